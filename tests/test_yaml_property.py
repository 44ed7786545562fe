"""Random YAML documents never crash the loader: they load, or raise a GitopsError."""

from __future__ import annotations

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitops.core import reader as store
from gitops.errors import GitopsError

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
                    st.text(max_size=12), st.sampled_from(["v1", "v2", "hf", "ct2", "../x", "production"]))
keys = st.one_of(st.sampled_from(["name", "versions", "format", "path", "md5", "protected", "gates", "v1",
                                  "v2", "version", "columns", "key", "text_field", "splits", "metrics"]),
                 st.text(max_size=8), st.integers())
documents = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                          st.dictionaries(keys, inner, max_size=5)),
                         max_leaves=25)
raw_text = st.text(alphabet=st.sampled_from(list("ab:-[]{}\n #'\"!&*?|>%@`v1.0\t")), max_size=80)


def _texts_for(text: str) -> dict[str, str]:
    return {"registry/m/model.yaml": text, "registry/m/aliases/staging.yaml": text,
            "registry/datasets/reviews.yaml": text}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_random_documents_load_or_raise_gitops_error(doc) -> None:
    text = yaml.safe_dump(doc)
    try:
        reg = store.parse_texts(_texts_for(text))
        reg.raise_problems()
    except GitopsError as exc:
        assert str(exc).strip()


@settings(max_examples=300, deadline=None)
@given(raw_text)
def test_random_text_loads_or_raises_gitops_error(text: str) -> None:
    try:
        store.parse_texts(_texts_for(text)).raise_problems()
    except GitopsError as exc:
        assert str(exc).strip()
