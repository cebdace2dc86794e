"""`chatkit completion`: print the shell completion script."""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

SHELLS = ("bash", "zsh", "fish")


class Shell(click.Choice[str]):
    """A shell chatkit completes; anything else is named as unsupported, in one line."""

    def convert(self, value: object, param: click.Parameter | None,
                ctx: click.Context | None) -> str:
        if str(value) in SHELLS:
            return str(value)
        raise click.UsageError(f"chatkit has no completion for {str(value)!r}: it completes "
                               f"{', '.join(SHELLS[:-1])} and {SHELLS[-1]}", ctx)


@click.command()
@click.argument("shell", type=Shell(SHELLS), metavar="SHELL")
def completion(shell: str) -> None:
    """Print the completion script for SHELL.

    \b
    bash:  eval "$(chatkit completion bash)"     (add to ~/.bashrc)
    zsh:   eval "$(chatkit completion zsh)"      (add to ~/.zshrc)
    fish:  chatkit completion fish > ~/.config/fish/completions/chatkit.fish
    """
    completer = get_completion_class(shell)
    assert completer is not None  # every name in SHELLS is one of click's
    root = click.get_current_context().find_root().command
    click.echo(completer(root, {}, "chatkit", "_CHATKIT_COMPLETE").source())
