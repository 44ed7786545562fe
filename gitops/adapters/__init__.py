"""Every outside system behind one small module: git, dvc, GitHub, HTTP."""
