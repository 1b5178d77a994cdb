"""The Flask application of ``aiida-multiscale serve``: the chain list, a chain page, a node page, pictures, JSON."""

from __future__ import annotations

import io
import math
import pathlib
import tempfile

from flask import Flask, abort, jsonify, render_template, request, send_file

from aiida_multiscale.web import queries

__all__ = ('create_app',)

HERE = pathlib.Path(__file__).parent


def _load(uuid: str, node_class=None):
    """The node of ``uuid`` (a full UUID or a PK), or a 404 page naming it."""
    from aiida import orm
    from aiida.common.exceptions import MultipleObjectsError, NotExistent

    try:
        node = orm.load_node(uuid)
    except (NotExistent, MultipleObjectsError, ValueError):
        abort(404, description=f'no node {uuid!r} in this profile')
    if node_class is not None and not isinstance(node, node_class):
        abort(404, description=f'node {uuid} is a {type(node).__name__}')
    return node


def _format_number(value, digits: int = 4) -> str:
    if value is None:
        return ''
    if isinstance(value, float) and (value == 0 or 1e-3 <= abs(value) < 1e5):
        return f'{value:.{digits}g}'
    if isinstance(value, float):
        return f'{value:.{digits - 1}e}'
    return str(value)


def _display(spec: dict) -> dict:
    """A quantity for display: Pa shown in GPa, m in um (the sizes a reader expects), the relative std in %."""
    from aiida_multiscale.physics.units import factor

    value, std, unit = spec.get('value'), spec.get('std'), spec.get('unit') or ''
    for stored, shown in (('Pa', 'GPa'), ('m', 'um')):
        if unit == stored and value is not None:
            scale = factor(stored, shown)
            value, std, unit = value * scale, None if std is None else std * scale, shown
    relative = None
    if std is not None and value:
        relative = std / abs(value)
    shown_unit = '' if unit in ('dimensionless', '1') else unit
    return {
        'value': _format_number(value),
        'std': _format_number(std, 2),
        'unit': shown_unit,
        'relative': '' if relative is None or math.isinf(relative) else f'{relative:.1%}',
        'note': spec.get('note', ''),
    }


def create_app(read_only: bool = True) -> Flask:
    """The application on the loaded profile; ``read_only`` opens its database read-only (the tests' in-process
    client passes False, so that the test session's own profile stays writable)."""
    from aiida.manage import get_manager

    from aiida_multiscale.web.readonly import make_storage_read_only

    profile = get_manager().get_profile()
    if profile is None:
        raise RuntimeError('no AiiDA profile is loaded')
    if read_only:
        make_storage_read_only()
    app = Flask(
        'aiida_multiscale.web',
        template_folder=str(HERE / 'templates'),
        static_folder=str(HERE / 'static'),
    )
    app.config['PROFILE'] = profile.name
    app.config['STORAGE'] = profile.storage_backend
    app.config['BROKER'] = profile.process_control_backend
    app.jinja_env.filters['quantity'] = _display
    app.jinja_env.filters['number'] = _format_number
    app.jinja_env.filters['date'] = lambda value: value.strftime('%Y-%m-%d %H:%M') if value else ''
    app.jinja_env.filters['seconds'] = lambda value: '' if value is None else f'{value:.0f} s'

    @app.context_processor
    def profile_context():
        return {'profile': app.config['PROFILE'], 'storage': app.config['STORAGE']}

    @app.teardown_request
    def close_session(_exc):
        # One short read transaction per request: a long-lived one would keep showing a stale snapshot.
        get_manager().get_profile_storage().get_session().rollback()

    @app.get('/')
    def chains():
        element = request.args.get('element') or None
        state = request.args.get('state') or None
        rows = queries.list_chains(element=element, state=state)
        return render_template(
            'chains.html',
            rows=rows,
            element=element,
            state=state,
            elements=queries.element_choices(),
            states=queries.STATES,
        )

    @app.get('/chain/<uuid>')
    def chain(uuid):
        from aiida import orm

        node = _load(uuid, orm.WorkflowNode)
        return render_template('chain.html', chain=queries.chain_detail(node))

    @app.get('/chain/<uuid>/graph.json')
    def chain_graph(uuid):
        from aiida import orm

        return jsonify(queries.chain_graph_elements(_load(uuid, orm.WorkflowNode)))

    @app.get('/chain/<uuid>/trace.json')
    def chain_trace(uuid):
        from aiida_multiscale.provenance.lineage import trace, trace_json

        try:
            return jsonify(trace_json(trace(_load(uuid))))
        except ValueError as exc:
            abort(404, description=str(exc))

    @app.get('/chain/<uuid>/eos.png')
    def chain_eos(uuid):
        from aiida.common.links import LinkType

        from aiida_multiscale.provenance.pictures import plot_eos

        node = _load(uuid)
        rungs = {
            link.link_label: link.node for link in node.base.links.get_outgoing(link_type=LinkType.CALL_WORK).all()
        }
        if 'dft' not in rungs or not rungs['dft'].is_finished_ok:
            abort(404, description='the DFT rung of this chain has not finished')
        with tempfile.TemporaryDirectory() as folder:
            path = plot_eos(rungs['dft'], pathlib.Path(folder) / 'eos.png')
            content = path.read_bytes()
        return send_file(io.BytesIO(content), mimetype='image/png')

    @app.get('/picture/<uuid>.png')
    def picture(uuid):
        from aiida import orm

        node = _load(uuid)
        if hasattr(node, 'get_png'):
            content = node.get_png()
        elif isinstance(node, orm.SinglefileData) and node.filename.lower().endswith('.png'):
            content = node.get_content(mode='rb')
        else:
            abort(404, description=f'node {uuid} has no picture')
        return send_file(io.BytesIO(content), mimetype='image/png')

    @app.get('/node/<uuid>')
    def node(uuid):
        return render_template('node.html', node=queries.node_detail(_load(uuid)))

    @app.get('/api/chains')
    def api_chains():
        rows = queries.list_chains(element=request.args.get('element'), state=request.args.get('state'))
        return jsonify([{**row, 'ctime': row['ctime'].isoformat()} for row in rows])

    @app.errorhandler(404)
    def not_found(error):
        return render_template('error.html', message=error.description), 404

    return app
