"""The web view of ``aiida-multiscale serve``: pages on a hand-built chain, the read-only guard, and a real browser.

The browser test drives Debian's headless chromium (installed by ``scripts/install_system.sh``) with playwright over
the session's fast chain, served by the real command in a subprocess, as a user would open it.
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys
import time

import pytest
from aiida import orm
from aiida.common.links import LinkType

from aiida_multiscale.data.handoff import HandoffData

CHROMIUM = shutil.which('chromium') or '/usr/bin/chromium'
#: Where the browser test leaves its screenshots (the docs' pictures are made with
#: ``AIIDA_MULTISCALE_SCREENSHOTS=docs/images pytest tests/test_web.py -k browser``).
SCREENSHOTS = os.environ.get('AIIDA_MULTISCALE_SCREENSHOTS')


def _process(cls, label, caller=None, call_label=None, process_type=None):
    node = cls()
    node.set_process_label(label)
    node.set_process_state('finished')
    node.set_exit_status(0)
    if process_type:
        node.set_process_type(process_type)
    if caller is not None:
        link = LinkType.CALL_WORK if isinstance(node, orm.WorkflowNode) else LinkType.CALL_CALC
        node.base.links.add_incoming(caller, link, call_label or label)
    return node


@pytest.fixture
def mock_chain(aiida_profile):
    """chain -> DFT rung -> dft_to_md bridge -> handoff -> MD rung; the chain returns a macro made by fem_to_macro."""
    element = orm.Str('Al').store()
    chain = _process(orm.WorkChainNode, 'MultiscaleWorkChain', process_type='aiida.workflows:multiscale.chain')
    chain.label = 'Al multiscale chain (fast)'
    chain.base.links.add_incoming(element, LinkType.INPUT_WORK, 'element')
    chain.store()
    dft = _process(orm.WorkChainNode, 'DftWorkChain', chain, 'dft')
    dft.store()
    fit = _process(orm.CalcFunctionNode, 'fit_equation_of_state', dft)
    fit.store()
    eos = HandoffData({'a0': {'value': 4.04, 'unit': 'angstrom', 'std': 0.01}}, producer='fit_equation_of_state')
    eos.base.links.add_incoming(fit, LinkType.CREATE, 'result')
    eos.store()
    eos.base.links.add_incoming(dft, LinkType.RETURN, 'eos')
    bridge = _process(orm.CalcFunctionNode, 'dft_to_md', chain)
    bridge.base.links.add_incoming(eos, LinkType.INPUT_CALC, 'eos')
    bridge.store()
    handoff = HandoffData(
        {'a0': {'value': 4.04, 'unit': 'angstrom', 'std': 0.01, 'note': 'from the EOS'}},
        bridge='dft_to_md',
        from_scale='dft',
        to_scale='md',
    )
    handoff.base.links.add_incoming(bridge, LinkType.CREATE, 'result')
    handoff.store()
    md = _process(orm.WorkChainNode, 'MdWorkChain', chain, 'md')
    md.base.links.add_incoming(handoff, LinkType.INPUT_WORK, 'dft')
    md.store()
    final = _process(orm.CalcFunctionNode, 'fem_to_macro', chain)
    final.base.links.add_incoming(handoff, LinkType.INPUT_CALC, 'elastic')
    final.store()
    macro = HandoffData(
        {'youngs_modulus': {'value': 7.0e10, 'unit': 'Pa', 'std': 2.0e9}},
        bridge='fem_to_macro',
        from_scale='fem',
        to_scale='macro',
    )
    macro.base.links.add_incoming(final, LinkType.CREATE, 'macro')
    macro.store()
    macro.base.links.add_incoming(chain, LinkType.RETURN, 'macro')
    return chain


@pytest.fixture
def client(aiida_profile):
    from aiida_multiscale.web.app import create_app

    # In-process and writable: the test session's profile must stay writable for the other tests.
    return create_app(read_only=False).test_client()


def test_list_chain_and_node_pages_mock(mock_chain, client):
    """The list shows the chain with element, protocol, state and macro value; filters select; pages link."""
    page = client.get('/').get_data(as_text=True)
    assert mock_chain.uuid in page
    row = page.split(f'data-uuid="{mock_chain.uuid}"', 1)[1].split('</tr>', 1)[0]
    assert '>Al<' in row and '>fast<' in row and 'finished' in row
    assert 'youngs_modulus' in row and '70 ± 2 GPa' in row
    assert mock_chain.uuid not in client.get('/?element=Cu').get_data(as_text=True)
    assert mock_chain.uuid in client.get('/?element=Al&state=finished').get_data(as_text=True)
    assert mock_chain.uuid not in client.get('/?state=failed').get_data(as_text=True)

    chain_page = client.get(f'/chain/{mock_chain.uuid}').get_data(as_text=True)
    assert 'dft_to_md: dft → md' in chain_page and 'from the EOS' in chain_page
    assert 'Weakest handoff' in chain_page and 'DftWorkChain' in chain_page
    graph = client.get(f'/chain/{mock_chain.uuid}/graph.json').get_json()
    kinds = {element['data'].get('label', '').split('\n')[0]: element['data'].get('kind') for element in graph}
    assert (
        kinds['DftWorkChain'] == 'workflow' and kinds['dft_to_md'] == 'handoff' and kinds['MdWorkChain'] == 'workflow'
    )
    edges = [element['data'] for element in graph if 'source' in element['data']]
    assert any(edge['label'] == 'eos' and edge['type'] == 'return' for edge in edges)

    node_page = client.get(f'/node/{mock_chain.uuid}').get_data(as_text=True)
    assert 'call_work' in node_page and 'element' in node_page and '/node/' in node_page
    assert client.get('/node/00000000-0000-0000-0000-000000000000').status_code == 404


def test_storage_read_only(aiida_profile):
    """The server's storage refuses writes: storing a node in a process where the guard is on fails."""
    script = (
        'from aiida import load_profile, orm\n'
        f'load_profile({aiida_profile.name!r})\n'
        'from aiida_multiscale.web.readonly import make_storage_read_only\n'
        'print(make_storage_read_only())\n'
        'print(orm.QueryBuilder().append(orm.Node).count() >= 0)\n'
        'try:\n'
        "    orm.Str('x').store()\n"
        "    print('STORED')\n"
        'except Exception as exc:\n'
        "    print('REFUSED', type(exc).__name__)\n"
    )
    result = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split()
    assert lines[0] in ('postgresql', 'sqlite') and 'True' in lines and 'REFUSED' in lines, result.stdout


@pytest.fixture
def served(aiida_profile):
    """``aiida-multiscale serve --port 0`` in a subprocess; yields its base URL."""
    command = [str(pathlib.Path(sys.executable).parent / 'aiida-multiscale'), '-p', aiida_profile.name, 'serve']
    process = subprocess.Popen([*command, '--port', '0'], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = process.stdout.readline()
        match = re.search(r'http://127\.0\.0\.1:(\d+)/', line)
        assert match, line + process.stdout.read() if process.poll() is not None else line
        yield f'http://127.0.0.1:{match[1]}'
    finally:
        process.terminate()
        process.wait(timeout=30)


def _shot(page, name):
    if SCREENSHOTS:
        pathlib.Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(pathlib.Path(SCREENSHOTS) / name), full_page=True)


@pytest.mark.daemon
@pytest.mark.real_code
@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason='chromium is not installed (scripts/install_system.sh)')
def test_browser_fast_chain(fast_chain, served):
    """In chromium: the list shows the chain, a click opens its page, the graph shows the four rungs and the handoffs,
    a click on a graph node opens it, and a link of the node page opens the next node."""
    from playwright.sync_api import sync_playwright

    assert fast_chain.is_finished_ok, fast_chain.exit_message
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=['--headless', '--no-sandbox', '--disable-gpu']
        )
        page = browser.new_page(viewport={'width': 1400, 'height': 1000})
        page.goto(served + '/')
        row = page.locator(f'tr[data-uuid="{fast_chain.uuid}"]')
        assert row.count() == 1
        assert 'Al' in row.inner_text() and 'finished' in row.inner_text() and 'youngs_modulus' in row.inner_text()
        _shot(page, 'web_chains.png')

        row.locator('a.chain-link').click()
        page.wait_for_url(f'**/chain/{fast_chain.uuid}')
        page.wait_for_selector('#graph[data-ready]', timeout=30_000)
        assert page.locator('.handoff').count() >= 4  # dft_to_md and mesoscale_to_fem hand on two nodes each
        assert page.locator('.rung').count() == 4
        labels = page.evaluate("window.chainGraph.nodes('[kind = \"workflow\"]').map(n => n.data('label'))")
        for rung in ('DftWorkChain', 'MdWorkChain', 'PhaseFieldWorkChain', 'FemWorkChain'):
            assert any(label.startswith(rung) for label in labels), labels
        handoffs = page.evaluate('window.chainGraph.nodes(\'[kind = "handoff"]\').map(n => n.id())')
        assert len(handoffs) >= 4
        page.locator('#graph').scroll_into_view_if_needed()
        time.sleep(0.5)
        _shot(page, 'web_chain.png')

        # A real click on the drawn node of the first rung.
        rung = page.evaluate(
            '(() => { const n = window.chainGraph.nodes(\'[kind = "workflow"]\').filter('
            "n => n.data('label').startsWith('DftWorkChain'))[0]; const p = n.renderedPosition(); "
            'return {id: n.id(), x: p.x, y: p.y}; })()'
        )
        box = page.locator('#graph').bounding_box()
        page.mouse.click(box['x'] + rung['x'], box['y'] + rung['y'])
        page.wait_for_url(f'**/node/{rung["id"]}')
        assert 'DftWorkChain' in page.locator('h1').inner_text()
        _shot(page, 'web_node.png')

        link = page.locator('table.outputs a.node-link').first
        target = link.get_attribute('href')
        link.click()
        page.wait_for_url(f'**{target}')
        assert page.locator('h1').count() == 1 and 'Attributes' in page.content()
        browser.close()
