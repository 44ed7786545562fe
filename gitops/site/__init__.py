"""``gitops site``: the registry as static HTML pages (see :mod:`gitops.site.build`)."""
