"""The registry: models, versions, aliases and data sets as YAML files under ``registry/``."""
