from gitops.cli import main

if __name__ == "__main__":
    main(prog_name="gitops")  # `python -m gitops` reads and completes as `gitops` (_GITOPS_COMPLETE)
