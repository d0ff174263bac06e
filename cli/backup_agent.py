"""``backup_agent``: run one member of the worker fleet (``celery -A tasks worker`` with sane defaults).

It consumes every queue unless told otherwise, runs one pool process per core, and names itself
after the host so Flower shows who is who. FDB's ``backup_agent -C`` habit is accepted: the cluster
file becomes ``FDB_CLUSTER_FILE`` for this process (jobs carry their own cluster files).
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Sequence

import click

from cli import common, exit_codes
from tasks.app import QUEUES, app


@click.command(context_settings={"help_option_names": ["-h", "--help"]}, epilog=exit_codes.HELP_EPILOG)
@common.cluster_option
@click.option("-Q", "--queues", default=",".join(QUEUES), show_default=True, help="Queues to consume.")
@click.option("-c", "--concurrency", type=int, default=os.cpu_count() or 1, show_default=True)
@click.option("-n", "--name", default=f"agent-{os.getpid()}@{socket.gethostname()}", help="Worker node name.")
@click.option("--logdir", default=None, help="Directory for trace files (FDBBR_LOG_DIR).")
@click.option("-l", "--loglevel", default="INFO", show_default=True)
def cli(cluster_file: str | None, queues: str, concurrency: int, name: str, logdir: str | None, loglevel: str) -> int:
    """Run a backup agent: execute backup and restore tasks from the fleet's queues."""
    unknown = set(queues.split(",")) - set(QUEUES)
    if unknown:
        raise click.BadParameter(f"unknown queue(s) {', '.join(sorted(unknown))}; known: {', '.join(QUEUES)}")
    if cluster_file:
        os.environ["FDB_CLUSTER_FILE"] = common.resolve_cluster_file(cluster_file)
    if logdir:
        os.environ["FDBBR_LOG_DIR"] = logdir
    app.worker_main(["worker", "-Q", queues, "-c", str(concurrency), "-n", name, "-l", loglevel, "--without-gossip"])
    return exit_codes.OK


def main(argv: Sequence[str] | None = None) -> int:
    return common.run(cli, argv, prog_name="backup_agent")


if __name__ == "__main__":
    sys.exit(main())
