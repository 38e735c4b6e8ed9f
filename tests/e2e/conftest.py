import pytest

from tests.e2e.harness import NodeProcess


@pytest.fixture
def network(tmp_path):
    """Start nodes with ``network.add(name, *args)``; all are stopped at the end."""
    started: list[NodeProcess] = []

    class Network:
        workdir = str(tmp_path)
        nodes = started

        def add(self, name: str, *args: str, network: str = "regtest", start: bool = True) -> NodeProcess:
            node = NodeProcess(str(tmp_path), name, network=network)
            started.append(node)
            if start:
                node.start(*args)
            return node

    yield Network()
    for node in started:
        try:
            if node.running:
                node.stop()
        except Exception:
            node.kill()
