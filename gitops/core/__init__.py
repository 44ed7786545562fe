"""The ground floor of the registry: the Workspace, the schema, paths and writers, the one reader."""
