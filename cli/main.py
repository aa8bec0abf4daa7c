"""The `stseg` click app: one group; each command family lives in its own module and registers here."""

from __future__ import annotations

import sys

import click

from stseg_core.errors import StsegError


class _Group(click.Group):
    """Turns library errors into one line on stderr and the error's exit code."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except StsegError as err:
            click.echo(f"stseg: error: {err}", err=True)
            sys.exit(err.exit_code)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="stseg")
def cli() -> None:
    """stseg — STSeg (PVUW 2025 MOSE winner) as a pipeline: data, finetune, infer, fuse, eval, report.

    Every stage runs on this machine by default (the local backend) or as Kubernetes Jobs
    (`--backend kubernetes`). Paths are URIs: a plain path, file:///… or s3://bucket/prefix.
    """


def _register() -> None:
    # Each module adds its commands to `cli`; imported here so `stseg --help` lists them all.
    import stseg_cli.data_transfer_cmds
    import stseg_cli.demo
    import stseg_cli.eval_cmd
    import stseg_cli.finetune_cmd
    import stseg_cli.fuse_cmd
    import stseg_cli.infer_cmd
    import stseg_cli.report_cmd
    import stseg_cli.verify_cmd  # noqa: F401
    from stseg_cli import data_cmds, run_cmds, submit_cmds  # noqa: F401


_register()


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
