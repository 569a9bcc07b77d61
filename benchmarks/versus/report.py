"""The summary of a run (ratios against the targets, our stage times, the memory estimate)
and its markdown."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .settings import GB, ISSUE_REFERENCE, POLL_S, REPO, SCRIPT, Method


def model_summary(model_dir: Path) -> dict:
    files = sorted(model_dir.glob("*.safetensors"))
    params = 0
    for f in files:  # safetensors: 8-byte little-endian header size, then a JSON header
        with open(f, "rb") as fh:
            header = json.loads(fh.read(int.from_bytes(fh.read(8), "little")))
        for key, meta in header.items():
            if key != "__metadata__":
                n = 1
                for d in meta["shape"]:
                    n *= d
                params += n
    config = json.loads((model_dir / "config.json").read_text())
    text, vision = config["text_config"], config["vision_config"]
    return {"dir": str(model_dir), "bytes": sum(f.stat().st_size for f in files), "parameters": params,
            "hidden": text["hidden_size"], "layers": text["num_hidden_layers"],
            "intermediate": text["intermediate_size"], "vocab": text["vocab_size"],
            "vision_depth": vision["depth"], "vision_dim": vision["embed_dim"], "dtype": config.get("dtype")}


def ratio(a, b):
    return None if a is None or b in (None, 0) else a / b


def ours_stages(log_path: Path) -> dict:
    """Stage times of our CLI, from the timestamps of its progress output (the log pump
    stamps every tqdm update): start-up, reading + processing the calibration set, layer-0
    capture, then per decoder layer the "load" and "quantize" stages of the progress bar's
    postfix, and the final writing. (Its "layer N done in X s" log line is the time since the
    layer loop started, cumulative, so per-layer times are taken from the stamps instead.)"""
    import re

    stamped = []
    for line in log_path.read_text().splitlines():
        m = re.match(r"\[\s*([\d.]+)s\] (.*)", line)
        if m:
            stamped.append((float(m.group(1)), m.group(2)))
    if not stamped:
        return {}
    first = {}
    layers: dict[int, dict[str, float]] = {}
    for t, text in stamped:
        for key, pattern in (("banner", r"^(GPTQ|AWQ) \d-bit"), ("calibration", r"^calibration: "),
                             ("capture_start", r"capture layer-0 inputs"), ("loop_start", r"^quantize:"),
                             ("wrote", r"^wrote ")):
            if key not in first and re.search(pattern, text):
                first[key] = t
        for m in re.finditer(r"layer (\d+): (load|quantize|outputs|worst err)", text):
            layers.setdefault(int(m.group(1)), {}).setdefault(m.group(2), t)
    per_layer = []
    for index in sorted(layers):
        st = layers[index]
        end_t = st.get("worst err")
        q = st.get("quantize")
        per_layer.append({"layer": index,
                          "load_s": round(q - st["load"], 1) if q is not None and "load" in st else None,
                          "quantize_s": round(end_t - q, 1) if end_t is not None and q is not None else None,
                          "total_s": round(end_t - st["load"], 1) if end_t is not None and "load" in st else None})
    done = [r for r in per_layer if r["total_s"] is not None]
    last_done = max((layers[r["layer"]]["worst err"] for r in done), default=None)

    def total(key):
        return round(sum(r[key] or 0 for r in done), 1)

    return {
        "startup_s": first.get("banner"),
        "calibration_processing_s": round(first["calibration"] - first["banner"], 1)
        if "calibration" in first and "banner" in first else None,
        "capture_s": round(first["loop_start"] - first["capture_start"], 1)
        if "loop_start" in first and "capture_start" in first else None,
        "layers_done": len(done), "layers_s": total("total_s"), "layers_load_s": total("load_s"),
        "layers_quantize_s": total("quantize_s"),
        "layer_s_min": min((r["total_s"] for r in done), default=None),
        "layer_s_max": max((r["total_s"] for r in done), default=None),
        "write_s": round(first["wrote"] - last_done, 1) if "wrote" in first and last_done is not None else None,
        "end_s": stamped[-1][0], "per_layer": per_layer,
    }


def memory_estimate(model_dir: Path, calibration: str) -> dict | None:
    """What qwen2vl_quant.memory predicts for this model and calibration token count (from the
    report's "N text, N image and N video tokens"), to set against the measured peak."""
    import re

    counts = re.findall(r"(\d+) (?:text|image|video)", calibration)
    if not counts:
        return None
    from transformers import AutoConfig

    from qwen2vl_quant.memory import estimate

    tokens = sum(int(n) for n in counts)
    e = estimate(AutoConfig.from_pretrained(model_dir), tokens)
    return {"tokens": tokens, "capture_gb": round(e.capture_bytes / GB, 3), "layer_gb": round(e.layer_bytes / GB, 3),
            "peak_gb": round(e.peak_bytes / GB, 3)}


def build_summary(args, method: Method, machine, model, calib, held_out, disjoint, runs, evaluation,
                  own_gptq: dict | None = None) -> dict:
    rows = {}
    for name in ("ours", "gptqmodel"):
        if name not in runs:
            continue
        r = runs[name]
        err = evaluation["results"].get(f"{name}-{method.name}", {}).get("rel_error") if evaluation else None
        rows[name] = {"wall_s": r["wall_s"], "cpu_s": round(r["cpu_user_s"] + r["cpu_sys_s"], 1),
                      "peak_rss_gb": r["peak_rss_gb"], "ru_maxrss_gb": r["ru_maxrss_gb"], "rel_error": err,
                      "returncode": r["returncode"], "load_1min_mean": r["load_average_1min_mean_during"]}
    ratios = {}
    if "ours" in rows and "gptqmodel" in rows:
        o, g = rows["ours"], rows["gptqmodel"]
        ratios = {"wall": ratio(o["wall_s"], g["wall_s"]), "cpu": ratio(o["cpu_s"], g["cpu_s"]),
                  "rss": ratio(o["peak_rss_gb"], g["peak_rss_gb"]),
                  "ru_maxrss": ratio(o["ru_maxrss_gb"], g["ru_maxrss_gb"]),
                  "error": ratio(o["rel_error"], g["rel_error"])}
    if "ours" in rows and method.name == "gptq":
        ratios["wall_vs_issue_reference"] = ratio(rows["ours"]["wall_s"], ISSUE_REFERENCE["wall_s"])
        ratios["rss_vs_issue_reference"] = ratio(rows["ours"]["peak_rss_gb"], ISSUE_REFERENCE["peak_rss_gb"])
    if "ours" in rows and own_gptq is not None and own_gptq["returncode"] == 0:
        ratios["vs_our_gptq"] = ratio(rows["ours"]["wall_s"], own_gptq["wall_s"])
        ratios["our_gptq_wall_s"] = own_gptq["wall_s"]
    command = " ".join([Path(sys.executable).relative_to(REPO).as_posix() if str(sys.executable).startswith(str(REPO))
                        else sys.executable, str(SCRIPT.relative_to(REPO)), *sys.argv[1:]])
    return {"command": command, "machine": machine, "model": model, "preset": args.preset,
            "method": {"name": method.name, "title": method.title, "our_args": list(method.our_args),
                       "issue": method.issue},
            "settings": {"samples": args.samples, "decoder_layers": getattr(args, "decoder_layers", None),
                         "calibration": str(calib), "held_out": str(held_out),
                         "held_out_disjoint": disjoint, "eval_dtype": args.eval_dtype},
            "rows": rows, "ratios": ratios, "targets": method.targets,
            "issue_reference": ISSUE_REFERENCE if method.name == "gptq" else None,
            "runs": runs, "evaluation": evaluation}


def _f(x, fmt):
    return "n/a" if x is None else format(x, fmt)


def _first_of(s: dict) -> str:
    from qwen2vl_quant.testing.tiny_model import PRESETS

    full = PRESETS[s["preset"]].layers
    return f" (the first {s['model']['layers']} of its {full}; vision tower whole)" \
        if s["model"]["layers"] < full else ""


def render_markdown(s: dict) -> str:
    m, rows, ratios, targets, method = s["machine"], s["rows"], s["ratios"], s["targets"], s["method"]
    shapes = "the Qwen2-VL-2B shapes" if s["preset"] == "2b-shapes" else f"the {s['preset']} test model"
    lines = [f"# qwen2vl-quant vs GPTQModel: {method['name'].upper()} Int4 on {shapes}", "",
             f"`{s['command']}`", "",
             (f"Model: random-weight Qwen2-VL, preset `{s['preset']}` (hidden {s['model']['hidden']}, "
             f"{s['model']['layers']} layers{_first_of(s)}, intermediate {s['model']['intermediate']}, vocab {s['model']['vocab']}, "
             f"vision depth {s['model']['vision_depth']} x {s['model']['vision_dim']}; "
             f"{s['model']['parameters'] / 1e9:.3g} B parameters, "
             f"{s['model']['bytes'] / GB:.2f} GB {s['model']['dtype']}). "
             f"Calibration: {s['settings']['samples']} image conversations (`{s['settings']['calibration']}`). "
             f"{method['title']} for both."), "",
             "| tool | wall s | CPU s | peak RSS GB | ru_maxrss GB | held-out rel. error | mean 1-min load during run |",
             "|---|---|---|---|---|---|---|"]
    names = {"ours": "qwen2vl-quant (ours)", "gptqmodel": f"GPTQModel {m['versions'].get('gptqmodel')}"}
    for k in ("ours", "gptqmodel"):
        if k in rows:
            r = rows[k]
            fail = "" if r["returncode"] == 0 else f" (exit {r['returncode']})"
            fail += " (reused, see below)" if s["runs"][k].get("reused_from") else ""
            lines.append(f"| {names[k]}{fail} | {r['wall_s']:.0f} | {r['cpu_s']:.0f} | {r['peak_rss_gb']:.2f} | "
                         f"{r['ru_maxrss_gb']:.2f} | {_f(r['rel_error'], '.5f')} | {r['load_1min_mean']:.2f} |")
    lines.append("")
    for k in ("ours", "gptqmodel"):
        run = s["runs"].get(k, {})
        if run.get("reused_from"):
            lines += [(f"*Reused row* ({names[k]}): measured by an earlier invocation (finished {run.get('finished')}), "
                      f"not in this one (`--reuse {k}`). {run.get('reuse_note', '')}"), ""]
    def verdict(key, value):
        return "n/a" if value is None else ("met" if value <= targets[key] else "NOT met")

    if "wall" in ratios:
        lines += [f"| ours / GPTQModel | measured | {method['issue']} target | |", "|---|---|---|---|",
                  f"| wall time | {_f(ratios['wall'], '.3f')} | <= {targets['wall']} | {verdict('wall', ratios['wall'])} |",
                  (f"| peak RSS (psutil tree) | {_f(ratios['rss'], '.3f')} | <= {targets['rss']} | "
                  f"{verdict('rss', ratios['rss'])} |"),
                  (f"| held-out error | {_f(ratios['error'], '.3f')} | <= {targets['error']} | "
                  f"{verdict('error', ratios['error'])} |"),
                  f"| CPU time (not a target) | {_f(ratios['cpu'], '.3f')} | | |",
                  f"| ru_maxrss (not the target figure) | {_f(ratios['ru_maxrss'], '.3f')} | | |", ""]
    if "vs_our_gptq" in ratios:
        lines += [(f"Our AWQ against our own GPTQ Int4 on the same model and data, in this invocation: "
                   f"{_f(ratios['vs_our_gptq'], '.3f')}x its wall time ({ratios['our_gptq_wall_s']:.0f} s); target "
                   f"<= {targets['vs_our_gptq']}: {verdict('vs_our_gptq', ratios['vs_our_gptq'])}."), ""]
    ref = s["issue_reference"]
    if "wall_vs_issue_reference" in ratios:
        lines += [(f"Against the issue's reference measurement of GPTQModel ({ref['wall_s']:.0f} s, "
                  f"{ref['peak_rss_gb']} GB): ours is {_f(ratios['wall_vs_issue_reference'], '.3f')}x the wall time "
                  f"and {_f(ratios['rss_vs_issue_reference'], '.3f')}x the peak RSS."), ""]
    lines += ["## How it was measured", "",
              ("- Each tool runs alone in its own child process, GPTQModel first, then ours, then a third child "
              "evaluates both checkpoints. **wall s**: spawn to exit of the child (imports, loading, calibration, "
              "quantization, writing). **peak RSS**: the largest sum of the RSS of the child and all its descendants, "
              f"polled with psutil every {POLL_S} s (the figure used for the ratio). **ru_maxrss**: from `os.wait4` on "
              "that child (kernel-exact peak of the largest single process; equals `getrusage(RUSAGE_CHILDREN)` for a "
              "parent with that one child; both tools ran as one process, so it is comparable). RSS includes "
              "file-backed pages of memory-mapped safetensors. **CPU s**: user + system time of the child tree."),
              (f"- **Held-out rel. error**: {s['evaluation']['samples'] if s['evaluation'] else 'n/a'} image+text "
              "conversations generated by this script with another seed (no image or text shared with the "
              "calibration set, checked by content hash), processed once with the model's processor. For each, the "
              "final-layer hidden state (after the final RMSNorm) of the quantized model vs the BF16 model; "
              "||h_q - h_bf16|| / ||h_bf16|| pooled over all tokens of all samples. Every model computes in "
              f"**{s['settings']['eval_dtype']}** (BF16 weights upcast exactly), so the error is the quantization's, "
              "not bf16 rounding. The BF16 model is loaded with transformers, both quantized checkpoints with our "
              "`load_quantized` (it reads GPTQ v1 and AWQ GEMM checkpoints)."),
              ]
    gi = s["runs"].get("gptqmodel", {}).get("info")
    if gi:
        config_class = "GPTQConfig" if method["name"] == "gptq" else "AWQConfig"
        lines += [f"- **GPTQModel settings**: defaults of `gptqmodel.quantization.config.{config_class}()`: "
                  + ", ".join(f"{k}={v}" for k, v in gi["defaults"].items())
                  + ". Used here: " + ", ".join(f"{k}={v}" for k, v in gi["used"].items())
                  + ". Flow: `GPTQModel.load(model_dir, config)`, `model.quantize(conversations, batch_size=1)` (its "
                  "Qwen2-VL definition applies the chat template with add_generation_prompt=True and reads the images "
                  "itself; qwen-vl-utils is not used for Qwen2-VL images), `model.save(out)`; "
                  "`GPTQMODEL_CPU_WORKERS=2`. Stage times (s): "
                  + ", ".join(f"{k} {v}" for k, v in gi["stages"].items()) + "."]
    oi = s["runs"].get("ours", {}).get("info")
    if oi:
        st = oi["stages"]
        lines += [("- **qwen2vl-quant settings**: our CLI (`qwen2vl-quant " + " ".join(method["our_args"])
                  + f" --num-samples {s['settings']['samples']} --device cpu`; the rest at its defaults, "
                  "--max-pixels 512*28*28: the 448x336 images, 192 visual tokens each, are not resized by either "
                  "tool). Stages, from the time stamps of its progress output: "
                  f"start-up {st.get('startup_s')} s, calibration set read and processed {st.get('calibration_processing_s')} s, "
                  f"layer-0 capture {st.get('capture_s')} s, {st.get('layers_done')} layers {st.get('layers_s')} s "
                  f"(stage 'load' {st.get('layers_load_s')} s, stage 'quantize' {st.get('layers_quantize_s')} s; "
                  f"{st.get('layer_s_min')} to {st.get('layer_s_max')} s per layer), writing the output "
                  f"{st.get('write_s')} s (per-layer times in the JSON).")]
        est = oi.get("memory_estimate")
        if est:
            lines += [(f"- **Memory estimate** (`qwen2vl_quant.memory.estimate`, {est['tokens']} calibration tokens): "
                      f"capture stage {est['capture_gb']:.2f} GB, layer stage {est['layer_gb']:.2f} GB, peak "
                      f"{est['peak_gb']:.2f} GB, against the measured peak RSS above.")]
    lines += ["", "## Machine", "",
              (f"- {m['cpu']}, {m['cpu_cores']} cores ({m['cpu_cores_usable']} usable), {m['ram_gib']} GiB RAM; "
              f"{m['os']}; Python {m['python']}; flags {', '.join(m['cpu_flags'])}"),
              f"- date (UTC): {m['date']}; git {m['git_commit']} ({m['git_dirty_files']} files modified/untracked)",
              f"- load average (1, 5, 15 min): start {m['load_average_start']}, end {m['load_average_end']}"]
    for k in ("gptqmodel", "ours", "eval"):
        if k in s["runs"] and "load_average_before" in s["runs"][k]:
            r = s["runs"][k]
            lines.append(f"  - {k}: before {r['load_average_before']}, after {r['load_average_after']}, "
                         f"mean 1-min load during {r['load_average_1min_mean_during']}")
    if m.get("other_busy_processes_start"):
        lines.append("- other jobs busy on the CPU at the start (the machine is shared; on 2 cores a load average "
                     "above 2 means the tools got only part of the CPU):")
        lines += [f"  - {p}" for p in m["other_busy_processes_start"]]
    lines.append("- versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v))
    lines.append("")
    return "\n".join(lines)
