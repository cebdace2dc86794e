"""`chatkit trust`: list, add or forget pinned server certificates."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click
from click.shell_completion import CompletionItem

from chatkit.cli.boundary import errors_as_click
from chatkit.errors import ConfigError

if TYPE_CHECKING:
    from chatkit.tls import KnownServers


def _known() -> KnownServers:
    from chatkit.paths import known_servers_file
    from chatkit.tls import KnownServers

    return KnownServers(known_servers_file())


def complete_pinned(ctx: click.Context, param: click.Parameter, incomplete: str
                    ) -> list[CompletionItem]:
    """Tab completion for --forget: the pinned HOST:PORT entries."""
    try:
        pinned = _known().all()
    except Exception:  # a broken file: no completion rather than a traceback in the shell
        return []
    return [CompletionItem(address, help=fingerprint) for address, fingerprint
            in sorted(pinned.items()) if address.startswith(incomplete)]


def _normalised(address: str) -> str:
    """HOST:PORT as chatkit pins it (the port is required: pins are per port)."""
    from chatkit.net.addresses import format_address, parse_address

    try:
        host, port = parse_address(address, 0)
    except ValueError as exc:
        raise ConfigError(f"--add: {exc}") from None
    if port == 0:
        raise ConfigError(f"--add: give the port too: {address}:PORT")
    return format_address(host, port)


@click.command()
@click.option("--forget", metavar="HOST:PORT|NAME", default=None,
              shell_complete=complete_pinned,
              help="Forget the certificate pinned for HOST:PORT, or for the server NAME "
                   "found by discovery (after a legitimate change).")
@click.option("--add", nargs=2, metavar="HOST:PORT FINGERPRINT", default=None,
              help="Pin FINGERPRINT (SHA256:... as `chatkit serve` prints it, or the AB:CD:... "
                   "hex form of openssl) for HOST:PORT before connecting the first time.")
def trust(forget: str | None, add: tuple[str, str] | None) -> None:
    """List the server certificates this machine has pinned, add one, or forget one."""
    from chatkit.tls import fingerprint_hex, parse_fingerprint

    with errors_as_click():
        known = _known()
        if forget is not None and add is not None:
            raise ConfigError("--add and --forget cannot be combined")
        if add is not None:
            address = _normalised(add[0])
            try:
                value = parse_fingerprint(add[1])
            except ValueError as exc:
                raise ConfigError(f"--add: {exc}") from None
            pinned = known.get(address)
            if pinned == value:
                click.echo(f"{address} is already pinned to {value}")
                return
            if pinned is not None:
                raise ConfigError(f"{address} is pinned to another certificate ({pinned}); "
                                  f"run `chatkit trust --forget {address}` first")
            known.pin(address, value)
            click.echo(f"pinned {address} to {value} ({fingerprint_hex(value)})")
            return
        if forget is not None:
            from chatkit.tls import KnownNames

            if KnownNames(known).forget(forget):  # a server name discovery found
                click.echo(f"forgot the certificates pinned for the name {forget!r}; the next "
                           "connection to a server of that name pins it anew")
                return
            if not known.forget(forget):
                matches = known.matching(forget)
                hint = (f"; did you mean {' or '.join(matches)}?" if matches
                        else "; `chatkit trust` lists the pinned servers")
                raise ConfigError(f"no certificate pinned for {forget}{hint}")
            click.echo(f"forgot {forget}; the next connection pins its certificate anew")
            return
        pinned_all = known.all()
        if not pinned_all:
            click.echo("no pinned servers (a chatkit client pins a server's certificate the "
                       "first time it connects)", err=True)
            return
        for address, fingerprint in sorted(pinned_all.items()):
            click.echo(f"{address}  {fingerprint}")
