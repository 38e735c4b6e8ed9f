import pytest


@pytest.fixture(scope="session")
def big_address(tmp_path_factory):
    """A regtest wallet (``.wallet_path``) whose first receiving address has 10,500
    history entries on a chain of 112 blocks (``.blocks``; see tests/bigaddress.py).
    Built once per session: about four seconds of signing."""
    from minichain.wallet.keyfile import KeyFile
    from tests import bigaddress

    path = str(tmp_path_factory.mktemp("big") / "wallet.json")
    keyfile, _ = KeyFile.create(path, "regtest", seed=bytes(range(32)))
    keyfile.next_address("receive")
    chain = bigaddress.build(keyfile.key("receive", 0), 10_500, 112)
    chain.wallet_path = path
    return chain


def pytest_addoption(parser):
    group = parser.getgroup("minichain soak")
    group.addoption("--soak-duration", type=float, default=None,
                    help="seconds of faults in tests/e2e/test_soak_e2e.py (default 75; hours locally)")
    group.addoption("--soak-seed", type=int, default=None, help="seed of the soak's fault schedule (default 1)")
