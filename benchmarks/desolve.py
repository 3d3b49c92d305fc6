"""R deSolve lsoda with the model's compiled C right-hand side (model.c_source()).

One R subprocess per model/regimen: it picks the loosest rtol of the ladder whose platelet
output is within the target error of the reference (both passed in), warms up, times the
solve ``repeats`` times inside R (Sys.time, microsecond resolution) and writes the outputs.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

R_SCRIPT = r"""
args <- commandArgs(trailingOnly = TRUE)
folder <- args[1]; repeats <- as.integer(args[2]); target <- as.numeric(args[3])
atol_factor <- as.numeric(args[4]); nout <- as.integer(args[5])
suppressPackageStartupMessages(library(deSolve))
f <- function(name) file.path(folder, name)
dll <- f(paste0("model", .Platform$dynlib.ext))
dyn.load(dll)
parms <- scan(f("parms.txt"), quiet = TRUE)
y0 <- scan(f("y0.txt"), quiet = TRUE)
names(y0) <- paste0("y", seq_along(y0))  # deSolve needs names to check events
times <- scan(f("times.txt"), quiet = TRUE)
outtimes <- scan(f("outtimes.txt"), quiet = TRUE)
ref <- scan(f("ref.txt"), quiet = TRUE)
ladder <- scan(f("ladder.txt"), quiet = TRUE)
outnames <- readLines(f("outnames.txt"))
ev <- read.csv(f("events.csv"))
run <- function(rtol) {
  ode(y = y0, times = times, func = "derivs", parms = parms, dllname = "model",
      initfunc = "initmod", nout = nout, outnames = outnames, events = list(data = ev),
      method = "lsoda", rtol = rtol, atol = rtol * atol_factor, maxsteps = 100000)
}
platelets <- function(o) o[match(outtimes, o[, "time"]), "platelets"]
t0 <- Sys.time(); o <- run(ladder[1]); first <- as.numeric(Sys.time() - t0, units = "secs")
chosen <- ladder[length(ladder)]
for (r in ladder) {
  o <- run(r); err <- max(abs(platelets(o) / ref - 1))
  if (is.finite(err) && err <= target) { chosen <- r; break }
}
o <- run(chosen)  # warm-up at the chosen tolerance
tt <- numeric(repeats)
p0 <- proc.time()
for (i in seq_len(repeats)) {
  t0 <- Sys.time(); o <- run(chosen); tt[i] <- as.numeric(Sys.time() - t0, units = "secs")
}
p1 <- proc.time()  # CPU (user + system) per solve over the timed loop: robust to host load
writeLines(format(sum((p1 - p0)[1:2]) / repeats, digits = 17), f("cpu.txt"))
t0 <- Sys.time(); run(ladder[1]); second <- as.numeric(Sys.time() - t0, units = "secs")
write.csv(data.frame(time = outtimes, platelets = platelets(o)), f("out.csv"), row.names = FALSE)
writeLines(format(c(chosen, chosen * atol_factor, median(tt), repeats, first - second,
                    tt), digits = 17), f("timing.txt"))
"""


def available() -> tuple[bool, str]:
    r = shutil.which("R")
    if r is None or shutil.which("Rscript") is None:
        return False, "R is not installed (apt-get install r-base-core r-base-dev r-cran-desolve)"
    check = subprocess.run(["Rscript", "-e", "library(deSolve)"], capture_output=True, text=True)
    if check.returncode != 0:
        return False, "R package deSolve is not installed (apt-get install r-cran-desolve)"
    return True, ""


def versions() -> str:
    out = subprocess.run(["Rscript", "-e", 'cat(R.version.string, "; deSolve",'
                          ' as.character(packageVersion("deSolve")))'],
                         capture_output=True, text=True)
    return out.stdout.strip()


def run_desolve(case, ladder, target, atol_factor, repeats) -> dict:
    """Compile, run and time deSolve for one case; returns a result dict."""
    model = case.model
    with tempfile.TemporaryDirectory(prefix="ppd_desolve_") as name:
        folder = Path(name)
        (folder / "model.c").write_text(model.c_source())
        start = time.perf_counter()
        build = subprocess.run(["R", "CMD", "SHLIB", "-o", "model.so", "model.c"], cwd=folder,
                               capture_output=True, text=True)
        compile_seconds = time.perf_counter() - start
        if build.returncode != 0:
            raise RuntimeError(f"R CMD SHLIB failed:\n{build.stderr[-2000:]}")
        n_targets = len(model.dose_targets)
        y0 = np.concatenate([case.y0, np.zeros(n_targets)])  # + infusion-rate states
        times = np.unique(np.concatenate([case.t_out, case.event_time[case.event_time
                                                                      <= case.t_out[-1]]]))
        write = lambda file, values: (folder / file).write_text(  # noqa: E731
            "\n".join(repr(float(v)) for v in values) + "\n")
        write("parms.txt", np.nan_to_num(case.p, nan=0.0))  # unread covariates: any number
        write("y0.txt", y0)
        write("times.txt", times)
        write("outtimes.txt", case.t_out)
        write("ref.txt", case.reference)
        write("ladder.txt", ladder)
        (folder / "outnames.txt").write_text("\n".join(model.output_names) + "\n")
        rows = ["var,time,value,method"] + [
            f"{int(s) + 1},{float(t)!r},{float(a)!r},add"
            for t, s, a in zip(case.event_time, case.event_state, case.event_amount)]
        (folder / "events.csv").write_text("\n".join(rows) + "\n")
        (folder / "bench.R").write_text(R_SCRIPT)
        start = time.perf_counter()
        proc = subprocess.run(["Rscript", "bench.R", str(folder), str(repeats), repr(target),
                               repr(atol_factor), str(len(model.outputs))], cwd=folder,
                              capture_output=True, text=True)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"Rscript failed:\n{proc.stderr[-2000:]}")
        values = [float(v) for v in (folder / "timing.txt").read_text().split()]
        cpu_seconds = float((folder / "cpu.txt").read_text().split()[0])
        out = np.genfromtxt(folder / "out.csv", delimiter=",", skip_header=1)
    rtol, atol, median, n, first_minus = values[:5]
    return {"rtol": rtol, "atol": atol, "median_seconds": median, "repeats": int(n),
            "compile_seconds": compile_seconds, "platelets": out[:, 1],
            "first_call_extra": first_minus, "times": values[5:], "r_wall": wall,
            "cpu_seconds": cpu_seconds}
