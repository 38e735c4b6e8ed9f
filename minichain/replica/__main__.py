"""``python -m minichain.replica``: one replica process (the testnet starts these; see ``host.py``).

Prints one line when it is ready, for the supervisor::

    minichain replica ready engine=pbft node=0 p2p=127.0.0.1:PORT api=127.0.0.1:PORT pid=PID
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

import click


def _hostport(ctx, param, value):
    from minichain.node.node import parse_hostport

    try:
        return parse_hostport(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _ids(ctx, param, value):
    if not value:
        return frozenset()
    try:
        return frozenset(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"expected replica numbers like 0,1, got {value!r}") from None


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--engine", required=True, help="pbft, tendermint, raft, paxos, dls or dls-byz.")
@click.option("--id", "node_id", required=True, type=click.IntRange(0), help="This replica's number.")
@click.option("--n", "n", required=True, type=click.IntRange(1, 64), help="How many replicas there are.")
@click.option("--datadir", required=True, type=click.Path(file_okay=False), help="Where its state and log live.")
@click.option("--keys", required=True, type=click.Path(dir_okay=False), help="Its link-key file.")
@click.option("--listen", default="127.0.0.1:0", show_default=True, callback=_hostport, help="Peer links (HOST:PORT).")
@click.option("--api", default="127.0.0.1:0", show_default=True, callback=_hostport, help="REST API (HOST:PORT).")
@click.option("--behaviour", default=None, help="A Byzantine behaviour (equivocate, double-vote, silent, ...).")
@click.option("--coalition", default="", callback=_ids, help="Every Byzantine replica's number, e.g. 0,1.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seeds this replica's random stream.")
@click.option("--epoch", default=None, type=float, help="time.monotonic() at the testnet's start (the engines' time 0).")
@click.option("--log-level", default="info", show_default=True, type=click.Choice(["debug", "info", "warning", "error"]))
def main(engine, node_id, n, datadir, keys, listen, api, behaviour, coalition, seed, epoch, log_level):
    """Run one consensus replica: a simulator engine on real sockets and a real clock."""
    from minichain.replica.durable import StateFileError
    from minichain.replica.host import ReplicaConfig, ReplicaError
    from minichain.replica.keys import KeyFileError

    logging.basicConfig(level=getattr(logging, log_level.upper()), stream=sys.stderr,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    config = ReplicaConfig(engine=engine, node_id=node_id, n=n, datadir=datadir, keys=keys, listen=listen, api=api,
                           behaviour=behaviour, coalition=coalition, seed=seed, epoch=epoch)
    try:
        asyncio.run(_run(config))
    except (ReplicaError, KeyFileError, StateFileError) as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot start the replica: {exc}") from None


async def _run(config) -> None:
    from minichain.replica.host import ReplicaHost

    host = ReplicaHost(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, host.request_stop)
    try:
        await host.start()
        print(f"minichain replica ready engine={config.engine} node={config.node_id} "
              f"p2p={config.listen[0]}:{host.listen_port} api={config.api[0]}:{host.api_port} "
              f"recovered={int(host.recovered)} pid={os.getpid()}", flush=True)
        await host.wait_stopped()
    finally:
        await host.stop()


if __name__ == "__main__":
    main(prog_name="python -m minichain.replica")
