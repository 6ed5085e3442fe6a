"""``modelserving keys generate``: an Ed25519 key pair for signing models (serving.governance.signing)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``keys generate``."""
    keys = subparsers.add_parser("keys", help="signing keys for models", description="Signing keys for models.")
    commands = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    generate = commands.add_parser(
        "generate",
        help="write a new Ed25519 key pair",
        description="Write NAME.key (private: keep it with whoever publishes models; mode 0600) and NAME.pub "
        "(public: give it to the job with --trusted-keys DIR). A model published with --sign NAME.key is "
        "accepted by a job that trusts NAME.pub.",
    )
    generate.add_argument("--out", type=Path, default=Path("keys"), metavar="DIR", help="where to write (./keys)")
    generate.add_argument("--name", default="publisher", help="file name of the pair (publisher)")
    generate.set_defaults(handler=run_generate)


def run_generate(args: argparse.Namespace) -> int:
    """Write the pair; one line says where and the key's id."""
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    from serving.governance.signing import generate_keys, key_id

    private, public = generate_keys(args.out, args.name)
    print(f"wrote {private} (private) and {public} (public), key id {key_id(load_pem_public_key(public.read_bytes()))}")
    return 0
