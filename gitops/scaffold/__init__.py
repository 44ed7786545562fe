"""``gitops init``: scaffold a GitOps repository (see :mod:`gitops.scaffold.init`)."""
