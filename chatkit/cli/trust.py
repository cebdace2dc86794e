"""`chatkit trust`: list or forget pinned server certificates."""

from __future__ import annotations

import click

from chatkit.cli.boundary import errors_as_click
from chatkit.errors import ConfigError


@click.command()
@click.option("--forget", metavar="HOST:PORT", default=None,
              help="Forget the certificate pinned for HOST:PORT (after a legitimate change).")
def trust(forget: str | None) -> None:
    """List the server certificates this machine has pinned, or forget one."""
    from chatkit.paths import known_servers_file
    from chatkit.tls import KnownServers

    known = KnownServers(known_servers_file())
    with errors_as_click():
        if forget is not None:
            if not known.forget(forget):
                raise ConfigError(f"no certificate pinned for {forget}")
            click.echo(f"forgot {forget}; the next connection pins its certificate anew")
            return
        for address, fingerprint in sorted(known.all().items()):
            click.echo(f"{address}  {fingerprint}")
