"""``impromptu-ops sandbox``: run the local platform simulator.

``sandbox serve`` prints the base URL as the first stdout line once listening, serves until
SIGINT/SIGTERM and exits 0. It refuses a non-loopback ``--host`` unless ``--allow-remote``
(exit 78). The defaults make a registration take seconds (64 MiB, 1 iteration, 2 bits per
round over 10 rounds), not the documented minutes.
"""

from __future__ import annotations

from pathlib import Path

import click

from impromptu_ops import contract
from impromptu_ops.cli.app import App, pass_app
from impromptu_ops.cli.output import err, out


@click.group("sandbox")
def sandbox() -> None:
    """The local simulator of the Impromptu platform (loopback only)."""


@sandbox.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Bind address (loopback).")
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="Port; 0 picks a free one.")
@click.option("--state-dir", type=click.Path(path_type=Path, file_okay=False),
              help="State folder (default: <state_dir>/sandbox).")
@click.option("--pow-memory-kib", type=click.IntRange(8), default=64 * 1024, show_default=True)
@click.option("--pow-iterations", type=click.IntRange(1), default=1, show_default=True)
@click.option("--pow-difficulty", type=click.IntRange(1, 64), default=2, show_default=True,
              help="Leading zero bits per round.")
@click.option("--pow-rounds", type=click.IntRange(1, 256), default=contract.POW_ROUNDS,
              show_default=True)
@click.option("--no-pow", is_flag=True, help="Registration without proof of work.")
@click.option("--payment", type=click.Choice(contract.PAYMENT_MODES), default="none",
              show_default=True, help="Registration fee mode.")
@click.option("--registration-fee", type=click.IntRange(0), help="Fee in token base units.")
@click.option("--payment-token", help="Fee token address.")
@click.option("--payment-recipient", help="Fee recipient address.")
@click.option("--chain-rpc", default="", help="Verify upfront payments on this JSON-RPC chain.")
@click.option("--return-wallet-key", is_flag=True, help="Include walletPrivateKey at register.")
@click.option("--no-key-management", is_flag=True, help="Answer 404 on /v1/agent/keys.")
@click.option("--allow-remote", is_flag=True, help="Permit a non-loopback --host.")
@pass_app
def serve(app: App, host: str, port: int, state_dir: Path | None, pow_memory_kib: int,
          pow_iterations: int, pow_difficulty: int, pow_rounds: int, no_pow: bool,
          payment: str, registration_fee: int | None, payment_token: str | None,
          payment_recipient: str | None, chain_rpc: str, return_wallet_key: bool,
          no_key_management: bool, allow_remote: bool) -> None:
    """Serve the platform API at http://HOST:PORT/api until interrupted."""
    from impromptu_ops.sandbox.server import SandboxConfig, SandboxServer, run_until_signalled

    optional = {"registration_fee": registration_fee, "payment_token": payment_token,
                "payment_recipient": payment_recipient}
    config = SandboxConfig.build(
        pow_required=not no_pow, pow_memory_kib=pow_memory_kib, pow_iterations=pow_iterations,
        pow_difficulty=pow_difficulty, pow_rounds=pow_rounds, payment_mode=payment,
        chain_rpc=chain_rpc, return_wallet_key=return_wallet_key,
        key_management=not no_key_management,
        **{k: v for k, v in optional.items() if v is not None})
    folder = state_dir or app.settings().paths.state_dir / "sandbox"
    server = SandboxServer(config, folder, host=host, port=port, allow_remote=allow_remote)

    def ready(base_url: str) -> None:
        out(base_url)  # the first stdout line: scripts wait for it
        err(f"sandbox: platform at {base_url}, OpenRouter subset at {server.openrouter_url}, "
            f"controls at {server.root_url}/_sandbox/, state in {server.state_dir}; "
            "Ctrl-C to stop")

    run_until_signalled(server, ready)
