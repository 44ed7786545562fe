"""gitops: model CI/CD as pull requests.

A git repository is the model registry: models, versions and aliases are YAML files under
``registry/``; weights and data sets are tracked with DVC. See README.md.
"""

__version__ = "0.1.0"
