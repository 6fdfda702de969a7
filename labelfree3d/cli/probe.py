"""`labelfree3d probe offsets|linear`: judge a pre-trained PointINS network against ground truth."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from labelfree3d.cli.common import console


def _metres(value: float) -> str:
    return f"{100.0 * value:.1f}"


def register(app: typer.Typer) -> None:
    probe_app = typer.Typer(help="Probe a pre-trained PointINS network (frozen) against ground truth.", no_args_is_help=True)
    app.add_typer(probe_app, name="probe")

    @probe_app.command("offsets")
    def offsets(
        checkpoint: Path = typer.Argument(..., help="RUN/model.safetensors written by labelfree3d pretrain."),
        data: Path = typer.Argument(..., help="Scans with ground-truth instances (folder, .txt list or scan)."),
        reader: str = typer.Option(None, "--format", help="Reader name for the scans; detected when omitted."),
        device: str = typer.Option("cpu", "--device", help="Torch device of the forward passes."),
        init_seed: int = typer.Option(0, "--init-seed", help="Seed of the same network at initialisation."),
        as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
    ) -> None:
        """Mean distance from x + O to each point's GT instance centroid: trained, at initialisation, zero offsets."""
        from labelfree3d.train.probe import offset_probe

        result = offset_probe(checkpoint, data, format=reader, device=device, init_seed=init_seed, progress=console.err)
        if as_json:
            console.json(result)
            return
        table = Table(title="distance of x + O to the GT instance centroid (cm)")
        for column in ("offsets", "mean over points", "mean over instances"):
            table.add_column(column, justify="left" if column == "offsets" else "right")
        for key, label in (("trained", "trained network"), ("initial", "same network at initialisation"), ("zero", "zero (points' own spread)")):
            table.add_row(label, _metres(result[key]["point_mean"]), _metres(result[key]["instance_mean"]))
        table.caption = f"{len(result['per_scene'])} scans, {result['zero']['points']} points, {result['zero']['instances']} instances"
        console.print(table)

    @probe_app.command("linear")
    def linear(
        checkpoint: Path = typer.Argument(..., help="RUN/model.safetensors written by labelfree3d pretrain."),
        train_data: Path = typer.Argument(..., help="Labelled scans the probe learns from."),
        eval_data: Path = typer.Argument(..., help="Labelled scans it is judged on (keep them apart)."),
        fraction: float = typer.Option(1.0, "--fraction", help="Share of TRAIN_DATA's scans whose labels are used."),
        ridge: float = typer.Option(1.0, "--ridge", help="L2 penalty of the linear map (standardised features)."),
        radius: float = typer.Option(None, "--radius", help="pointins_offsets clustering radius, metres (default 1.5 voxels)."),
        min_points: int = typer.Option(100, "--min-points", help="Smallest cluster kept, points."),
        seed: int = typer.Option(0, "--seed", help="Choice of scans and points."),
        reader: str = typer.Option(None, "--format", help="Reader name for the scans; detected when omitted."),
        device: str = typer.Option("cpu", "--device", help="Torch device of the forward passes."),
        as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
    ) -> None:
        """Linear probe: frozen features -> GT offsets on a fraction of labelled scans; offsets and AP on the others."""
        from labelfree3d.train.probe import linear_offset_probe

        result = linear_offset_probe(checkpoint, train_data, eval_data, fraction=fraction, ridge=ridge, radius=radius,
                                     min_points=min_points, seed=seed, format=reader, device=device,
                                     progress=console.err)  # fmt: skip
        if as_json:
            console.json(result)
            return
        table = Table(title="linear offset probe on the evaluation scans")
        table.add_column("measure")
        table.add_column("value", justify="right")
        table.add_row("labelled training scans", str(len(result["train_scans"])))
        table.add_row("x + O to centroid, probe (cm)", _metres(result["offsets"]["probe"]["point_mean"]))
        table.add_row("x to centroid, zero offsets (cm)", _metres(result["offsets"]["zero"]["point_mean"]))
        for key, label in (("ap", "AP"), ("ap50", "AP50"), ("ap25", "AP25")):
            table.add_row(f"{label} of clustered probe offsets (%)", f"{100 * result[key]:.1f}")
        console.print(table)

    @probe_app.command("decoder")
    def decoder(
        checkpoint: Path = typer.Argument(..., help="RUN/model.safetensors written by labelfree3d pretrain."),
        train_data: Path = typer.Argument(..., help="Labelled scans the decoder learns from."),
        eval_data: Path = typer.Argument(..., help="Labelled scans it is judged on (keep them apart)."),
        output: Path = typer.Option(..., "--output", "-o", help="Folder of the probe's training runs (pretrained/, control/)."),
        fraction: float = typer.Option(1.0, "--fraction", help="Share of TRAIN_DATA's scans whose labels are used."),
        control: bool = typer.Option(True, "--control/--no-control", help="Also train on a frozen backbone at initialisation."),
        settings: list[str] = typer.Option(None, "--set", help="Trainer setting key=value, e.g. optim.max_steps=300."),
        seed: int = typer.Option(0, "--seed", help="Choice of scans and the runs' seed."),
        reader: str = typer.Option(None, "--format", help="Reader name for the scans; detected when omitted."),
        device: str = typer.Option("cpu", "--device", help="Torch device."),
        as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
    ) -> None:
        """Decoder probe: train only the Mask3D decoder on the frozen backbone with GT of a fraction of scans; AP on others."""
        from labelfree3d.cli.common import parse_settings
        from labelfree3d.train.probe import decoder_probe

        result = decoder_probe(checkpoint, train_data, eval_data, output, fraction=fraction, control=control,
                               settings=parse_settings(settings), seed=seed, format=reader, device=device)  # fmt: skip
        if as_json:
            console.json(result)
            return
        table = Table(title=f"decoder probe, {len(result['train_scans'])} labelled scan(s)")
        for column in ("frozen backbone", "AP", "AP50", "AP25"):
            table.add_column(column, justify="left" if column == "frozen backbone" else "right")
        for key, label in (("pretrained", "pre-trained"), ("control", "at initialisation")):
            if key in result:
                table.add_row(label, *(f"{100 * result[key][k]:.1f}" for k in ("ap", "ap50", "ap25")))
        console.print(table)
