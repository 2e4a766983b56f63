"""What happens around each training step: metrics.jsonl, TensorBoard, periodic checkpoints."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from gensemble.checkpoint import atomic_write_bytes
from gensemble.ensemble.state import ema_key
from gensemble.imageio import make_grid
from gensemble.safepath import inside, open_regular, remove_files
from gensemble.training.loop import update_ema
from gensemble.training.member import Member


class RunHooks:
    """Called by the trainers after every member step; owns every side effect of training."""

    def __init__(self, ensemble: Any, run_dir: Path, tensorboard: bool = True) -> None:
        self.ens, self.run_dir = ensemble, run_dir
        self.cfg = ensemble.cfg.train
        # Appended through an fd opened with O_NOFOLLOW: a link or FIFO named metrics.jsonl is refused.
        fd = open_regular(run_dir, "metrics.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        self._metrics = os.fdopen(fd, "a")  # noqa: SIM115  (closed in close())
        self._start = time.perf_counter()
        self._together = 0  # depth of `together()` blocks; saves inside them wait for the block's end
        self._save_pending = False
        # One TensorBoard run per member (RUN/tb/NAME), each purging from the step after the one the
        # member starts from: what an aborted attempt logged past its checkpoint (or, on a fresh
        # start, at all) is hidden, as metrics.jsonl is cut back. One writer for all could only purge
        # at one step, and members of one checkpoint can stand at different steps.
        self._tb: dict[str, Any] = {}
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = {
                    m.name: tb_writer(SummaryWriter, run_dir, m.name, m.step) for m in ensemble.members
                }
            except ImportError:  # tensorboard is a dependency, but a stripped install still trains
                self._tb = {}

    def __call__(self, member: Member, stats: dict[str, float]) -> None:
        step = member.step
        ema = self.ens.aux.get(ema_key(member.name))
        if ema is not None:
            update_ema(ema, member.model.generator_net(), self.cfg.ema_beta(step))
        if self.cfg.snapshot_every and step % self.cfg.snapshot_every == 0:
            self.snapshot(member)
        if step % self.cfg.log_every == 0 or step == self.cfg.steps:
            self.log(member.name, step, stats)
        if self.cfg.image_every and step % self.cfg.image_every == 0:
            self.images(member)
        if step % self.cfg.checkpoint_every == 0:
            self.checkpoint()

    def checkpoint(self) -> None:
        """Save the whole ensemble now or, inside `together()`, once at the end of the block."""
        if self._together:
            self._save_pending = True
        else:
            self.ens.save()

    @contextmanager
    def together(self) -> Iterator[None]:
        """Hooks of members that stepped together (batched or coupled schemes): one checkpoint after all.

        Saving at the first member's hook would catch the others before their EMA update and log line,
        so a resume from it would not be exact.
        """
        self._together += 1
        try:
            yield
        finally:
            self._together -= 1
        if not self._together and self._save_pending:
            self._save_pending = False
            self.ens.save()

    def needs_weights(self, step: int) -> bool:
        """Whether the hook at `step` reads members' weights (EMA, snapshot, images or checkpoint).

        The batched engine keeps the weights stacked and writes them back into the members only then.
        """
        c = self.cfg
        return (
            c.keeps_ema
            or step % c.checkpoint_every == 0
            or bool(c.snapshot_every and step % c.snapshot_every == 0)
            or bool(c.image_every and step % c.image_every == 0)
        )

    def log(self, name: str, step: int, stats: dict[str, float]) -> None:
        rec = {"member": name, "step": step, "time": round(time.perf_counter() - self._start, 3), **stats}
        self._metrics.write(json.dumps(rec) + "\n")
        self._metrics.flush()
        if name in self._tb:
            for k, v in stats.items():
                self._tb[name].add_scalar(f"{name}/{k}", v, step)

    def snapshot(self, member: Member) -> None:
        """Generator weights at this step, for a uniform "soup" of snapshots (Wortsman et al. 2022) or a
        snapshot ensemble."""
        from safetensors.torch import save

        net = member.model.generator_net()
        state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
        path = self.run_dir / "snapshots" / member.name / f"step-{member.step:08d}.safetensors"
        atomic_write_bytes(path, save(state), root=self.run_dir)

    def images(self, member: Member, n: int = 36) -> None:
        if member.name not in self._tb:
            return
        x = member.model.sample(n, torch.Generator().manual_seed(0))
        if x.dim() == 4:
            self._tb[member.name].add_image(
                f"{member.name}/samples", make_grid(x.cpu()), member.step, dataformats="HWC"
            )

    def close(self) -> None:
        for m in self.ens.members:
            self.images(m)
        self._metrics.close()
        for writer in self._tb.values():
            writer.close()


def tb_writer(writer: Any, run_dir: Path, name: str, step: int) -> Any:
    """Member `name`'s TensorBoard writer, in RUN/tb/NAME (never through a link planted in a run
    folder someone handed over), purging what earlier attempts logged after `step`. A member that
    starts from step 0 has nothing of an aborted attempt worth keeping: its event files go."""
    folder = inside(run_dir, f"tb/{name}", kind="dir", create_parents=True)
    if step == 0:
        remove_files(run_dir, f"tb/{name}", "events.out.tfevents.")
    else:
        after_earlier_events(folder)
    return writer(str(folder), purge_step=step + 1)  # step itself was logged before its checkpoint


def after_earlier_events(folder: Path) -> None:
    """TensorBoard reads a folder's event files in name order, and a name starts with the second its
    file was made, then the pid and a per-process counter. A file made in the same second as an
    earlier attempt's can sort before it (pid 999 after 1000, counter 10 before 9): its steps are
    then read first, and purged as out of order when the older file's follow. Waiting for the next
    second (under 1 s, only then) makes the new file sort last."""
    stamps = []
    for p in folder.iterdir():
        parts = p.name.split(".")
        if p.name.startswith("events.out.tfevents.") and len(parts) > 3 and parts[3].isdigit():
            stamps.append(int(parts[3]))
    now = time.time()
    if max(stamps, default=-1) == int(now):  # (a stamp from the future, planted or skewed: not waited for)
        time.sleep(int(now) + 1 - now + 0.01)
