"""`python -m chatkit` runs the same CLI as the `chatkit` command."""

from chatkit.cli import main

if __name__ == "__main__":
    main()
