"""Regenerate ``github-openapi-subset.json``: GitHub's REST description, pruned to the operations we use.

The full description is GitHub's own (npm package ``@octokit/openapi``, file
``generated/api.github.com.json``, ~13 MB, ~20 s to load in openapi-core). The emulator needs only the
handful of operations the toolkit calls, plus every ``$ref`` they reach; that subset loads in a blink.

Regenerate (from the repository root)::

    cd /tmp && npm pack @octokit/openapi && tar xzf octokit-openapi-*.tgz
    python tests/emulator/prune_spec.py /tmp/package/generated/api.github.com.json

Fix-ups applied here (each is a place where GitHub's description disagrees with itself, found by
validating GitHub's own examples against GitHub's own schemas; all are logged when the script runs):

1. ``nullable: true`` together with ``enum``: OpenAPI 3.0 says a null must also be listed in the enum
   to be valid, and openapi-core follows that, so ``"conclusion": null`` would fail. ``None`` is added
   to such enums (what GitHub plainly means by ``nullable``).
2. Response examples that fail their own schema are repaired with the field GitHub sends today
   (:data:`EXAMPLE_REPAIRS`), or dropped when they cannot be valid (:data:`EXAMPLE_DROPS`). The emulator
   builds its responses from these examples, so a bad example would read as an emulator bug. The
   script refuses to write a subset in which any example still fails.
3. A ``oneOf`` with a ``discriminator`` whose members include an array (``GET .../contents/{path}``:
   a directory is a ``content-directory`` array, a file a ``content-file`` object): a discriminator
   reads a property of an object, so every directory listing would fail. The discriminator is
   removed there; the members' ``type`` enums still let exactly one of them match.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "github-openapi-subset.json"

# (path, method): every REST operation the toolkit (or its tests, acting as people) calls.
OPERATIONS = [
    ("/user", "get"),
    ("/repos/{owner}/{repo}", "get"),
    ("/repos/{owner}/{repo}/pulls", "get"),
    ("/repos/{owner}/{repo}/pulls", "post"),
    ("/repos/{owner}/{repo}/pulls/{pull_number}", "get"),
    ("/repos/{owner}/{repo}/pulls/{pull_number}/files", "get"),
    ("/repos/{owner}/{repo}/pulls/{pull_number}/reviews", "get"),
    ("/repos/{owner}/{repo}/pulls/{pull_number}/reviews", "post"),
    ("/repos/{owner}/{repo}/issues/{issue_number}/comments", "get"),
    ("/repos/{owner}/{repo}/issues/{issue_number}/comments", "post"),
    ("/repos/{owner}/{repo}/issues/comments/{comment_id}", "patch"),
    ("/repos/{owner}/{repo}/collaborators/{username}/permission", "get"),
    ("/orgs/{org}/teams/{team_slug}/members", "get"),
    ("/repos/{owner}/{repo}/contents/{path}", "get"),
    ("/repos/{owner}/{repo}/statuses/{sha}", "post"),
    ("/repos/{owner}/{repo}/check-runs", "post"),
    ("/repos/{owner}/{repo}/dispatches", "post"),
    ("/repos/{owner}/{repo}/codeowners/errors", "get"),
]


def _refs(node: object, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            found.add(ref)
        for value in node.values():
            _refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found)


def _lookup(spec: dict, ref: str) -> object:
    node: object = spec
    for part in ref.lstrip("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]  # type: ignore[index]
    return node


def prune(spec: dict) -> dict:
    """The spec reduced to :data:`OPERATIONS` and the components they reach."""
    paths: dict[str, dict] = {}
    for path, method in OPERATIONS:
        item = spec["paths"][path]
        kept = paths.setdefault(path, {k: v for k, v in item.items() if k in ("parameters", "summary")})
        kept[method] = item[method]
    out = {k: spec[k] for k in ("openapi", "info", "servers", "externalDocs") if k in spec}
    out["paths"] = paths
    seen: set[str] = set()
    todo: set[str] = set()
    _refs(paths, todo)
    components: dict[str, dict] = {}
    while todo:
        ref = todo.pop()
        if ref in seen:
            continue
        seen.add(ref)
        _, _, kind, name = ref.split("/", 3)
        target = _lookup(spec, ref)
        components.setdefault(kind, {})[name] = target
        _refs(target, todo)
    out["components"] = {k: dict(sorted(v.items())) for k, v in sorted(components.items())}
    return out


def admit_null_in_nullable_enums(node: object, log: list[str], where: str = "#") -> None:
    """Fix-up 1: ``nullable: true`` + ``enum`` -> the enum also lists ``None``."""
    if isinstance(node, dict):
        if node.get("nullable") is True and isinstance(node.get("enum"), list) and None not in node["enum"]:
            node["enum"].append(None)
            log.append(f"admitted null in nullable enum at {where}")
        for key, value in node.items():
            admit_null_in_nullable_enums(value, log, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            admit_null_in_nullable_enums(value, log, f"{where}/{i}")


def drop_discriminators_over_arrays(spec: dict, log: list[str]) -> None:
    """Fix-up 3: a ``oneOf`` + ``discriminator`` with an array member loses the discriminator."""

    def walk(node: object, where: str) -> None:
        if isinstance(node, dict):
            members = node.get("oneOf")
            if "discriminator" in node and isinstance(members, list) and any(
                    (_lookup(spec, m["$ref"]) if "$ref" in m else m).get("type") == "array" for m in members):
                del node["discriminator"]
                log.append(f"dropped a discriminator over an array member at {where}")
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}/{i}")

    walk(spec, "#")


# Fix-up 2: GitHub's own examples that fail GitHub's own schemas, repaired with the value GitHub really
# sends today (the emulator builds its responses from these examples). Keyed by example component.
EXAMPLE_REPAIRS: dict[str, list[tuple[str, object]]] = {
    # /user is oneOf(private-user, public-user) with a discriminator on user_view_type, which the
    # examples predate.
    "private-user-response-with-public-and-private-profile-information": [("user_view_type", "private")],
    "private-user-response-with-public-profile-information": [("user_view_type", "public")],
    # full-repository.language (and that of its `source`) is required but nullable.
    "full-repository-default-response": [("language", None), ("source/language", None)],
    # team.type (enterprise|organization) became required after the pull-request examples were written.
    "pull-request-simple-items": [("0/requested_teams/0/type", "organization")],
    "pull-request": [("requested_teams/0/type", "organization")],
    # collaborator.role_name is required.
    "repository-collaborator-permission-response-if-user-has-admin-permissions": [("user/role_name", "admin")],
}
# Examples the emulator does not need: a directory listing (it builds listings itself from git; the
# example failed the discriminator that fix-up 3 now removes).
EXAMPLE_DROPS = {"content-file-response-if-content-is-a-directory"}


def _set(doc: object, pointer: str, value: object) -> None:
    *parents, last = pointer.split("/")
    for part in parents:
        doc = doc[int(part)] if isinstance(doc, list) else doc[part]  # type: ignore[index]
    doc[last] = value  # type: ignore[index]


def repair_examples(spec: dict, log: list[str]) -> list[str]:
    """Apply :data:`EXAMPLE_REPAIRS`/:data:`EXAMPLE_DROPS`, then validate every response example.

    Returns the examples still failing their schema (the script refuses to write the subset then).
    """
    from openapi_schema_validator import OAS30Validator

    examples = spec["components"].get("examples", {})
    for name, sets in EXAMPLE_REPAIRS.items():
        for pointer, value in sets:
            _set(examples[name]["value"], pointer, value)
            log.append(f"repaired example {name}: {pointer} = {value!r}")
    failing: list[str] = []
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            for status, response in op["responses"].items():
                media = response.get("content", {}).get("application/json")
                if not media or "schema" not in media:
                    continue
                # "#/components/..." refs resolve against the document root, so carry the components.
                validator = OAS30Validator({**media["schema"], "components": spec["components"]})
                for name, example in list(media.get("examples", {}).items()):
                    comp = example.get("$ref", "").rsplit("/", 1)[-1]
                    if comp in EXAMPLE_DROPS:
                        del media["examples"][name]
                        log.append(f"dropped example {comp} ({method.upper()} {path})")
                        continue
                    value = _lookup(spec, example["$ref"]) if "$ref" in example else example
                    for err in validator.iter_errors(value.get("value")):
                        where = "/".join(map(str, err.absolute_path)) or "<root>"
                        failing.append(f"{method.upper()} {path} {status} example {comp or name}: {where}: "
                                       f"{err.message[:200]}")
    return failing


def prune_unused_examples(spec: dict) -> None:
    """After dropping examples, keep only the example components still referenced."""
    used: set[str] = set()
    _refs(spec["paths"], used)
    examples = spec["components"].get("examples", {})
    for name in list(examples):
        if f"#/components/examples/{name}" not in used:
            del examples[name]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("full_spec", type=Path, help="generated/api.github.com.json from @octokit/openapi")
    parser.add_argument("--out", type=Path, default=OUT, help="where to write the subset")
    args = parser.parse_args(argv)
    spec = json.loads(args.full_spec.read_text(encoding="utf-8"))
    subset = prune(spec)
    log: list[str] = []
    admit_null_in_nullable_enums(subset, log)
    drop_discriminators_over_arrays(subset, log)
    failing = repair_examples(subset, log)
    prune_unused_examples(subset)
    for line in log:
        print(line, file=sys.stderr)
    if failing:
        print("examples still failing their schema (add a repair to EXAMPLE_REPAIRS):", file=sys.stderr)
        print("\n".join(failing), file=sys.stderr)
        return 1
    subset.setdefault("info", {})["x-gitops-pruned-from"] = spec.get("info", {}).get("version", "")
    args.out.write_text(json.dumps(subset, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KiB, {len(OPERATIONS)} operations)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
