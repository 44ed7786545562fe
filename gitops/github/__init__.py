"""GitHub-side logic: sticky PR comments, CODEOWNERS matching, approvals, promotion PRs.

The HTTP calls live in :mod:`gitops.adapters.github`; these modules decide what to call and why.
"""
