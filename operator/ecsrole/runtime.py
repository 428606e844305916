"""Starts the operator process: logging, metrics and liveness endpoints, then kopf in-process."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import prometheus_client

from ecsrole import config as config_module
from ecsrole import gcpause, handlers, logs, looplag, metrics
from ecsrole.aws import clients
from ecsrole.context import OperatorContext
from ecsrole.leader import LeaseSettings
from ecsrole.shares import WorkerShares

log = logs.get_logger(__name__)


def run(
    *,
    config_path: str,
    metrics_address: tuple[str, int],
    health_address: tuple[str, int],
    log_format: logs.LogFormat,
    log_level: str,
    namespaces: tuple[str, ...],
    aws_workers: int,
    selector: str | None = None,
    lease: LeaseSettings | None,
) -> int:
    logs.configure_logging(level=log_level, log_format=log_format)
    try:
        config = config_module.load_config(config_path)
    except config_module.ConfigError as error:
        log.error("invalid configuration", path=config_path, problems=error.errors)
        return 1

    pool = ThreadPoolExecutor(max_workers=aws_workers, thread_name_prefix="aws")
    context = OperatorContext(
        config=config,
        clients=clients.ClientFactory(
            region=config.region, session_name=f"ecsrole-{config.cluster_name}"[:64]
        ),
        pool=pool,
        shares=WorkerShares(aws_workers),
        selector=selector,
    )
    prometheus_client.start_http_server(
        metrics_address[1], addr=metrics_address[0], registry=metrics.REGISTRY
    )
    log.info(
        "starting operator",
        cluster=config.cluster_name,
        accounts=len(config.accounts),
        metrics=f"http://{metrics_address[0]}:{metrics_address[1]}/metrics",
        namespaces=list(namespaces) or "all",
        selector=selector or "all",
        lease=lease.name if lease is not None else None,
    )
    try:
        code = asyncio.run(
            looplag.run_watched(
                handlers.run_operator(
                    context, namespaces=namespaces, health_address=health_address, lease=lease
                ),
                gcpause.keep_frozen(),
            )
        )
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        log.info("operator stopped")
    return code
