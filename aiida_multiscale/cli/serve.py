"""``aiida-multiscale serve``: a read-only web view of the profile's chains on localhost."""

from __future__ import annotations

import click

from aiida_multiscale.cli import cli

__all__ = ('cmd_serve',)


@cli.command('serve')
@click.option('--port', type=click.IntRange(0, 65535), default=8765, show_default=True, help='TCP port (0: any free).')
@click.option(
    '--host',
    default='127.0.0.1',
    show_default=True,
    help='Address to bind. The default is this machine only; another address exposes the provenance of the profile '
    'to whoever reaches it (there is no login).',
)
def cmd_serve(port, host):
    """Browse the chains of the profile in a web browser: list, chain pages, provenance graph, nodes.

    The database is opened read-only: nothing the browser does can change the profile.  Stop with Ctrl-C.
    """
    from werkzeug.serving import make_server

    from aiida_multiscale.web.app import create_app

    app = create_app(read_only=True)
    # Threaded: a page loads its pictures and graph in parallel; aiida's storage session is one per thread.
    server = make_server(host, port, app, threaded=True)
    click.echo(
        f'Serving profile {app.config["PROFILE"]} ({app.config["STORAGE"]}, read-only) on '
        f'http://{host}:{server.server_port}/  (Ctrl-C stops)',
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
