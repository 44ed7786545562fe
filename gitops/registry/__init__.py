"""The registry's verbs (one module each: show, create_model, register, alias, check, diff, history,
codeowners) above their domain (changes, audit, codeowners_text)."""
