// The provenance graph of a chain page: cytoscape with the dagre layout (both vendored), a click opens the node.
(function () {
  'use strict';
  var STYLE = [
    { selector: 'node', style: {
      'label': 'data(label)', 'text-wrap': 'wrap', 'text-valign': 'center', 'text-halign': 'center',
      'font-size': 10, 'width': 'label', 'height': 'label', 'padding': '8px', 'shape': 'round-rectangle',
      'background-color': '#e8e8e8', 'border-width': 1, 'border-color': '#888' } },
    { selector: 'node[kind = "workflow"]', style: { 'background-color': '#e38851', 'color': '#000' } },
    { selector: 'node[kind = "calcjob"]', style: { 'background-color': '#de707f' } },
    { selector: 'node[kind = "bridge"]', style: { 'background-color': '#de707f', 'shape': 'round-diamond', 'padding': '14px' } },
    { selector: 'node[kind = "calcfunction"]', style: { 'background-color': '#de707f' } },
    { selector: 'node[kind = "handoff"]', style: { 'background-color': '#ffd23f', 'border-width': 2, 'border-color': '#b8860b', 'shape': 'rectangle' } },
    { selector: 'node[kind = "result"]', style: { 'background-color': '#fff3c4', 'shape': 'rectangle' } },
    { selector: 'node[kind = "assumption"]', style: { 'background-color': '#ffe9a8', 'border-style': 'dashed', 'border-width': 2, 'shape': 'rectangle' } },
    { selector: 'node[kind = "data"]', style: { 'background-color': '#8cd499', 'shape': 'ellipse' } },
    { selector: 'node:active, node.hover', style: { 'border-width': 3, 'border-color': '#1a5fa8' } },
    { selector: 'edge', style: {
      'curve-style': 'bezier', 'target-arrow-shape': 'triangle', 'width': 1.2, 'line-color': '#999',
      'target-arrow-color': '#999', 'label': 'data(label)', 'font-size': 8, 'color': '#555',
      'text-background-color': '#fff', 'text-background-opacity': 0.8 } },
    { selector: 'edge[type = "call_work"], edge[type = "call_calc"]', style: { 'line-style': 'dashed' } }
  ];

  function draw(container, elements) {
    if (window.cytoscapeDagre) { cytoscape.use(window.cytoscapeDagre); }
    var cy = cytoscape({
      container: container, elements: elements, style: STYLE, wheelSensitivity: 0.3,
      layout: { name: window.cytoscapeDagre ? 'dagre' : 'breadthfirst', rankDir: 'TB', nodeSep: 25, rankSep: 45 }
    });
    cy.on('tap', 'node', function (event) { window.location.href = event.target.data('url'); });
    cy.on('mouseover', 'node', function (event) { event.target.addClass('hover'); container.style.cursor = 'pointer'; });
    cy.on('mouseout', 'node', function (event) { event.target.removeClass('hover'); container.style.cursor = ''; });
    window.chainGraph = cy;  // for the browser test and for a reader's console
    container.setAttribute('data-ready', String(cy.nodes().length));
  }

  document.addEventListener('DOMContentLoaded', function () {
    var container = document.getElementById('graph');
    if (!container) { return; }
    fetch(container.getAttribute('data-src'))
      .then(function (response) { return response.json(); })
      .then(function (elements) { draw(container, elements); })
      .catch(function (error) { container.textContent = 'The graph could not be loaded: ' + error; });
  });
})();
