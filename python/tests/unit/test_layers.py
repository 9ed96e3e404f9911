"""The package's import graph: no cycle anywhere (function-local and TYPE_CHECKING imports
counted), and the layers of ARCHITECTURE.md (also checked by ``lint-imports`` in CI)."""

from __future__ import annotations

import grimp

LAYERS = ["dothis.wire", "dothis.store", "dothis.engine", "dothis.producer", "dothis.worker"]


def _graph() -> grimp.ImportGraph:
    return grimp.build_graph("dothis", exclude_type_checking_imports=False)


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append(
                        (child, iter(sorted(graph.find_modules_directly_imported_by(child))))
                    )
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycle() -> None:
    graph = _graph()
    # A package's __init__ re-exporting its modules is not a cycle of concepts.
    for package in ["dothis", *LAYERS]:
        for module in graph.find_modules_directly_imported_by(package):
            graph.remove_import(importer=package, imported=module)
    assert _cycles(graph) == []


def test_producer_and_worker_never_import_each_other() -> None:
    graph = _graph()
    assert not graph.find_shortest_chain("dothis.producer.queue", "dothis.worker.worker")
    for producer in graph.find_children("dothis.producer"):
        for worker in graph.find_children("dothis.worker"):
            assert not graph.chain_exists(producer, worker, as_packages=False), (producer, worker)
            assert not graph.chain_exists(worker, producer, as_packages=False), (worker, producer)


def test_lower_layers_never_import_higher_ones() -> None:
    graph = _graph()
    for position, low in enumerate(LAYERS):
        for upper in LAYERS[position + 1 :]:
            assert not graph.chain_exists(low, upper, as_packages=True), (low, upper)


def test_only_the_operations_layer_builds_a_script_call() -> None:
    """ops.py names every script, builds its KEYS and ARGV and reads its reply; nothing else."""
    from pathlib import Path

    import dothis

    package = Path(dothis.__file__).parent
    builders = {
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if "ScriptCall(" in (text := path.read_text()) or "register_script" in text
    }
    assert builders == {"store/ops.py", "store/scripts.py"}
