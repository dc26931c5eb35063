"""The compile report as one self-contained HTML page (``--html``, docs/design.md §7).

Contract: :func:`render` is a pure, deterministic function of the ``nmc compile --report``
dict (:func:`nmc.compiler.report`): the same dict gives the same text, so the page and the JSON
never disagree.  The page makes no network request — inline CSS, inline SVG, a few lines of
plain JavaScript (hover details, sortable tables), no ``src``/``href`` to anything outside it —
and needs no matplotlib.  The board is drawn by the chip class's own view
(:meth:`~nmc.targets.classes.ChipClass.board_svg` of ``report["target_class"]``); a class
without one gets a table of its cores.  :func:`render_eval` does the same for ``nmc eval``'s
report: accuracy against T as an SVG plot and the per-layer losses.

Keys the page reads that may be None or absent (an ``nmc inspect`` report has no timings or
remarks: "not recorded"): ``passes``, ``remarks``, ``layers``, ``board``, ``energy_per_inference_j``.
"""

from __future__ import annotations

import math
import re
from html import escape

LOSS_WARN = 0.35  # relative error of a layer's rates above which the page warns
CORR_WARN = 0.9
LINK_WARN = 0.5  # busiest link's load as a fraction of its capacity
SPREAD_WARN = 1.5  # cores against the lower bound

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1b1b1b;background:#f6f7f9}
main{max-width:1320px;margin:0 auto;padding:18px 24px 40px}
h1{font-size:22px;margin:4px 0 2px}h2{font-size:17px;margin:26px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.sub{color:#555;font-size:13px;word-break:break-all}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:10px;margin-top:14px}
.card{background:#fff;border:1px solid #e0e0e0;border-radius:8px;padding:10px 12px}
.card .k{color:#666;font-size:12px;text-transform:uppercase;letter-spacing:.03em}
.card .v{font-size:21px;font-weight:600;margin-top:2px}.card .n{color:#666;font-size:12px}
table{border-collapse:collapse;background:#fff;border:1px solid #e0e0e0;font-size:13px}
th,td{padding:4px 9px;border-bottom:1px solid #eee;text-align:right;white-space:nowrap}
th{background:#eef1f5;cursor:pointer;user-select:none;position:sticky;top:0}
th.s-asc::after{content:" \\25B2"}th.s-desc::after{content:" \\25BC"}
td.l,th.l{text-align:left}td.wrap{white-space:normal;text-align:left;max-width:520px}
tr.hot td{background:#fff4e5}
.meter{display:inline-block;width:70px;height:8px;background:#eee;border-radius:4px;vertical-align:middle;margin-left:6px;overflow:hidden}
.meter i{display:block;height:100%;background:#3a78b5}.meter i.bad{background:#c0392b}
.advice{list-style:none;padding:0;margin:0}
.advice li{background:#fff;border:1px solid #e0e0e0;border-left:5px solid #3a78b5;border-radius:6px;padding:8px 12px;margin:6px 0}
.advice li.warn{border-left-color:#d9822b}.advice .try{color:#333;margin-top:3px}.advice .try b{color:#1f4e79}
.boardwrap{display:flex;gap:24px;align-items:flex-start;flex-wrap:wrap}
.boardwrap svg{background:#fff;border:1px solid #e0e0e0;border-radius:6px;max-width:100%;height:auto}
.board rect[data-core]:hover{stroke:#e67e22;stroke-width:3}
.side{min-width:280px;max-width:420px}
.legend{background:#fff;border:1px solid #e0e0e0;border-radius:6px;padding:10px 12px;font-size:12px}
.legend>div{margin:4px 0 10px}.legend .bar{display:block;height:12px;border-radius:3px;border:1px solid #ccc}
.legend .ends{display:flex;justify-content:space-between;gap:10px;color:#444}
.legend .swatch{display:inline-block;width:16px;height:12px;vertical-align:middle;border:1px solid #999}
.legend .swatch.unused{background:repeating-linear-gradient(45deg,#fff 0 3px,#d0d0d0 3px 5px)}
.legend .swatch.chip{border:2.5px solid #1f4e79;background:#fff}
#hover{background:#fff;border:1px solid #e0e0e0;border-radius:6px;padding:8px 10px;margin-top:10px;min-height:3.5em;font-size:13px}
.remarks{font:12.5px/1.5 ui-monospace,Menlo,Consolas,monospace;background:#fff;border:1px solid #e0e0e0;border-radius:6px;padding:8px 12px;white-space:pre-wrap}
.muted{color:#777}code{font-size:12.5px}
"""

JS = """
(function(){
  var hover=document.getElementById('hover');
  if(hover){document.querySelectorAll('[data-core],[data-link]').forEach(function(el){
    el.addEventListener('mouseenter',function(){var t=el.querySelector('title');hover.textContent=t?t.textContent:'';});
  });}
  document.querySelectorAll('table.sortable').forEach(function(table){
    table.querySelectorAll('th').forEach(function(th,col){
      th.addEventListener('click',function(){
        var asc=!th.classList.contains('s-asc');
        table.querySelectorAll('th').forEach(function(h){h.classList.remove('s-asc','s-desc');});
        th.classList.add(asc?'s-asc':'s-desc');
        var body=table.tBodies[0],rows=Array.prototype.slice.call(body.rows);
        rows.sort(function(a,b){
          var x=a.cells[col].getAttribute('data-v'),y=b.cells[col].getAttribute('data-v');
          var nx=parseFloat(x),ny=parseFloat(y);
          var r=(!isNaN(nx)&&!isNaN(ny))?nx-ny:String(x).localeCompare(String(y));
          return asc?r:-r;});
        rows.forEach(function(r){body.appendChild(r);});
      });
    });
  });
})();
"""


def _e(v) -> str:
    return escape(str(v), quote=True)


def _num(v, fmt: str = ".4g") -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return format(v, fmt)
    return str(v)


def _energy(j) -> str:
    if j is None:
        return "–"
    for unit, scale in (("mJ", 1e-3), ("µJ", 1e-6), ("nJ", 1e-9), ("pJ", 1e-12)):
        if j >= scale:
            return f"{j / scale:.3g} {unit}"
    return f"{j:.3g} J"


def _page(title: str, body: list[str]) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{_e(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n"
            + "\n".join(body) + f"\n</main>\n<script>{JS}</script>\n</body>\n</html>\n")


def _card(key: str, value: str, note: str = "") -> str:
    return (f'<div class="card"><div class="k">{_e(key)}</div><div class="v">{value}</div>'
            + (f'<div class="n">{note}</div>' if note else "") + "</div>")


def _table(headers: list[tuple[str, str]], rows: list[list[tuple[str, object]]], cls: str = "sortable",
           row_classes: list[str] | None = None) -> str:
    """``headers``: (label, css class); ``rows``: cells as (html, sort value)."""
    out = [f'<table class="{cls}"><thead><tr>'
           + "".join(f'<th class="{c}">{_e(h)}</th>' for h, c in headers) + "</tr></thead><tbody>"]
    for i, row in enumerate(rows):
        rc = (row_classes or [""] * len(rows))[i]
        out.append(f'<tr class="{rc}">' + "".join(
            f'<td class="{headers[j][1]}" data-v="{_e("" if v is None else v)}">{h}</td>'
            for j, (h, v) in enumerate(row)) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _meter(frac: float | None) -> str:
    if frac is None:
        return ""
    bad = " bad" if frac > 0.9 else ""
    return f'<span class="meter"><i class="{bad.strip()}" style="width:{100 * min(max(frac, 0), 1):.0f}%"></i></span>'


# ---------------------------------------------------------------------------------- advice


_LIMITED = re.compile(r"^partition: %(\S+): (\d+) core\(s\) \(lower bound (\d+)\), limited by (.+)$")
_SATURATED = re.compile(r"^quantize: %(\S+):.*saturated parameters (\d+)")


def advice(report: dict) -> list[dict]:
    """Warnings and remarks worth acting on, each with what to try: ``level`` (``warn`` or
    ``info``), ``text``, ``try`` (plain text).  Derived from the report dict alone."""
    out = []
    cores, bound = report.get("cores"), report.get("cores_lower_bound")
    layers = report.get("layers") or []
    remarks = report.get("remarks") or []
    if cores and bound and cores > SPREAD_WARN * bound:
        worst = max((r for r in layers if r.get("cores")), key=lambda r: r["cores"], default=None)
        out.append({"level": "warn", "text": f"{cores} cores against a lower bound of {bound}"
                    + (f"; the largest layer, %{worst['name']}, takes {worst['cores']}" if worst else ""),
                    "try": "the partition remarks below say what limits each layer; layers limited by input axons "
                           "pack fewer neurons per core — fewer inputs per neuron (smaller kernels or fewer "
                           "channels) or a chip with more input axons per core packs them tighter"})
    for r in remarks:
        m = _LIMITED.match(r)
        if m and m.group(4) in ("input axons", "synapse memory") and int(m.group(2)) > int(m.group(3)):
            what = m.group(4)
            out.append({"level": "info", "text": f"%{m.group(1)} takes {m.group(2)} cores (its lower bound "
                        f"{m.group(3)}), limited by {what}",
                        "try": ("fewer inputs per neuron (a smaller kernel or fewer input channels) or a chip with "
                                "more input axons per core" if what == "input axons" else
                                "fewer weight bits (--quantize weight-bits=N) or a chip with more synapse memory")})
        m = _SATURATED.match(r)
        if m and int(m.group(2)) > 0:
            out.append({"level": "warn", "text": f"%{m.group(1)}: {m.group(2)} parameters saturate when quantised",
                        "try": "more weight bits if the chip has them (--quantize weight-bits=N); "
                               "nmc eval --per-layer shows what it costs"})
    board = report.get("board") or {}
    links = [lk for lk in board.get("links", []) if lk.get("capacity")]
    if links:
        busiest = max(links, key=lambda lk: lk["load"] / lk["capacity"])
        frac = busiest["load"] / busiest["capacity"]
        if frac > LINK_WARN:
            out.append({"level": "warn", "text": f"link {tuple(busiest['from'])}->{tuple(busiest['to'])} carries "
                        f"{busiest['load']:.4g} spikes per step, {100 * frac:.0f}% of its capacity",
                        "try": "-O3 anneals the placement longer; a board with more chips spreads the traffic"})
    if (report.get("chips") or 0) > 1:
        out.append({"level": "info", "text": f"the network spans {report['chips']} chips",
                    "try": "hops between chips cost more energy and latency than hops on a chip: the board view "
                           "shows which links cross"})
    lossy = [r for r in layers if r.get("loss") and (
        (r["loss"].get("relative_error") or 0) > LOSS_WARN
        or (r["loss"].get("correlation") is not None and r["loss"]["correlation"] < CORR_WARN))]
    for r in lossy:
        L = r["loss"]
        out.append({"level": "warn", "text": f"%{r['name']} follows its ANN activations loosely: relative error "
                    f"{_num(L.get('relative_error'), '.3f')}, correlation {_num(L.get('correlation'), '.3f')}",
                    "try": "more time steps (--timesteps); nmc eval --per-layer --timesteps 8,16,32 shows how "
                           "the loss falls with T"})
    if layers and not any(r.get("loss") for r in layers) and report.get("loss_samples") is None \
            and report.get("remarks") is not None and any(r.startswith("calibrate") or r.startswith("normalize")
                                                          for r in (report.get("passes") or {})):
        out.append({"level": "info", "text": "the per-layer conversion loss was not measured",
                    "try": "nmc compile --calib DATA.npz --html measures it on the calibration inputs"})
    return out


# ---------------------------------------------------------------------------------- pages


def _summary(report: dict) -> str:
    cores, bound = report.get("cores"), report.get("cores_lower_bound")
    cards = [_card("target", _e(report.get("target")), _e(report.get("compiler") or "")),
             _card("chip class", _e(report.get("target_class") or "–"))]
    if cores is not None:
        note = f"lower bound {_e(bound)}" + (f" ({cores / bound:.2f}×)" if bound else "")
        cards.append(_card("cores", _e(cores), note))
        cards.append(_card("chips", _e(report.get("chips"))))
    energy = report.get("energy_per_inference_j")
    cards.append(_card("energy / inference", _energy(energy),
                       "estimated at the compile-time spike rates" if energy is not None else "no energy model"))
    cards.append(_card("latency", f"{_e(report.get('latency_steps'))} steps", f"T = {_e(report.get('timesteps'))}"))
    if report.get("neurons") is not None:
        cards.append(_card("neurons / synapses", f"{report['neurons']:,}", f"{report.get('synapses') or 0:,} synapses"))
    if report.get("max_link_load") is not None:
        cards.append(_card("busiest link", f"{report['max_link_load']:.4g}",
                           f"spikes/step, {_e(report.get('busiest_link') or '')}"))
    return '<div class="cards">' + "".join(cards) + "</div>"


def _pipeline(report: dict) -> str:
    passes = report.get("passes")
    stats = report.get("statistics") or {}
    names = []
    for item in re.split(r",(?![^{]*})", report.get("pipeline") or ""):
        name = item.split("{", 1)[0].strip()
        if name and name not in names:
            names.append(name)
    names += [n for n in sorted(set(passes or {}) | set(stats)) if n not in names]
    total = sum((passes or {}).values()) or 1.0
    rows = []
    for n in names:
        t = (passes or {}).get(n)
        changed = ", ".join(f"{k} {v}" for k, v in sorted((stats.get(n) or {}).items())) or "–"
        time = "not recorded" if passes is None else (f"{t:.3f} s{_meter(t / total)}" if t is not None else "–")
        rows.append([(f"<code>{_e(n)}</code>", n), (time, t if t is not None else -1), (_e(changed), changed)])
    note = ('<p class="muted">Pass timings are not recorded in the image (they would break byte-identical '
            "images); nmc compile --html shows them.</p>" if passes is None else "")
    return (_table([("pass", "l"), ("time", ""), ("what it changed", "l wrap")], rows) + note
            + f'<p class="sub">pipeline: <code>{_e(report.get("pipeline"))}</code></p>')


def _layers(report: dict) -> str:
    layers = report.get("layers") or []
    if not layers:
        return '<p class="muted">no layers</p>'
    measured = report.get("loss_samples")
    most = max((r.get("cores") or 0 for r in layers), default=0)
    worst = max(((r.get("loss") or {}).get("relative_error") or 0 for r in layers), default=0)
    rows, classes = [], []
    for r in layers:
        L = r.get("loss") or {}
        axons, limit = r.get("max_core_axons"), r.get("input_axons_limit")
        rel = L.get("relative_error")
        rows.append([
            (f"<code>%{_e(r['name'])}</code>", r["name"]),
            (_num(r.get("neurons")), r.get("neurons")), (_num(r.get("synapses")), r.get("synapses")),
            (_num(r.get("cores")), r.get("cores")), (_num(r.get("weight_bits")), r.get("weight_bits")),
            (_num(r.get("max_fan_in")), r.get("max_fan_in")),
            ((f"{axons} / {limit}{_meter(axons / limit)}" if axons is not None and limit else "–"),
             axons / limit if axons is not None and limit else None),
            (_num(rel, ".3f"), rel), (_num(L.get("correlation"), ".3f"), L.get("correlation")),
            (_num(L.get("quant_error"), ".4f"), L.get("quant_error")),
        ])
        hot = (most > 1 and r.get("cores") == most) or (worst > 0 and rel == worst and rel > LOSS_WARN)
        classes.append("hot" if hot else "")
    head = [("layer", "l"), ("neurons", ""), ("synapses", ""), ("cores", ""), ("weight bits", ""),
            ("max fan-in", ""), ("core input axons / limit", ""), ("rate error", ""), ("correlation", ""),
            ("weight error", "")]
    note = (f"Conversion loss measured on the first {measured} calibration inputs: the integer SNN's firing "
            "rates against the normalised ANN's activations (relative L2 error, Pearson correlation); weight "
            "error: RMS of quantisation." if measured else
            "Conversion loss not measured (nmc compile --calib DATA.npz --html measures it).")
    return _table(head, rows, row_classes=classes) + f'<p class="muted">{_e(note)} Click a column to sort.</p>'


def _board(report: dict) -> str:
    board = report.get("board")
    if not board:
        return '<p class="muted">no mapping onto cores (target cpu)</p>'
    svg = None
    if report.get("target_class"):
        from nmc.targets.classes import chip_class

        try:
            svg = chip_class(report["target_class"]).board_svg(board)
        except Exception as err:  # noqa: BLE001 - an unknown class: fall back to the table
            svg = None
            if type(err).__name__ != "NmcError":
                raise
    if svg is None:  # a class without a drawing: its cores as a table
        cores = board.get("cores") or []
        keys = [k for k in (cores[0] if cores else {}) if k != "core"]
        rows = [[(_e(c.get("core")), c.get("core"))] + [(_e(c.get(k)), c.get(k)) for k in keys] for c in cores]
        return _table([("core", "")] + [(k, "") for k in keys], rows)
    links = sorted(board.get("links") or [], key=lambda lk: -lk["load"])[:10]
    rows = [[(_e(f"{tuple(lk['from'])} → {tuple(lk['to'])}"), i), (_e(lk["kind"]), lk["kind"]),
             (_num(lk["load"]), lk["load"]), (_num(lk.get("capacity")), lk.get("capacity"))]
            for i, lk in enumerate(links)]
    side = ('<div class="side"><div id="hover" class="muted">hover over a core or a link for its details</div>'
            f"<h3>busiest links ({len(links)} of {len(board.get('links') or [])})</h3>"
            + _table([("link", "l"), ("kind", "l"), ("spikes/step", ""), ("capacity", "")], rows) + "</div>")
    return f'<div class="boardwrap">{svg}{side}</div>'


def _advice(report: dict) -> str:
    items = advice(report)
    if not items:
        return '<p class="muted">nothing to warn about</p>'
    return '<ul class="advice">' + "".join(
        f'<li class="{a["level"]}"><div>{_e(a["text"])}</div><div class="try"><b>try:</b> {_e(a["try"])}</div></li>'
        for a in items) + "</ul>"


def _remarks(report: dict) -> str:
    remarks = report.get("remarks")
    if remarks is None:
        return '<p class="muted">Remarks are not recorded in the image; nmc compile --html shows them.</p>'
    if not remarks:
        return '<p class="muted">no remarks</p>'
    return '<div class="remarks">' + "\n".join(_e(r) for r in remarks) + "</div>"


def render(report: dict) -> str:
    """The page for a compile report dict (module contract)."""
    title = f"nmc compile report: {report.get('target')}"
    body = [f"<h1>{_e(title)}</h1>",
            f'<div class="sub">source sha256 {_e(report.get("source_sha256"))} · opt level '
            f'{_e(report.get("opt_level"))} · seed {_e(report.get("seed"))}</div>',
            _summary(report),
            "<h2>What to look at</h2>", _advice(report),
            "<h2>Layers</h2>", _layers(report),
            "<h2>The board</h2>", _board(report),
            "<h2>Pipeline</h2>", _pipeline(report),
            "<h2>Remarks</h2>", _remarks(report)]
    return _page(title, body)


# ---------------------------------------------------------------------------------- nmc eval


def accuracy_svg(report: dict, width: int = 640, height: int = 360) -> str:
    """Accuracy (%) against T (log scale) as inline SVG: the ANN as a dashed line, ANN@T, the
    float and the integer SNN."""
    rows = report.get("snn") or []
    ts = [r["timesteps"] for r in rows]
    series = [("ANN@T (T + 1 levels)", "rate_code_accuracy", "#999", "4 3"),
              ("float SNN", "float_accuracy", "#3a78b5", ""), ("integer SNN", "int_accuracy", "#c0392b", "")]
    values = [100 * v for _, k, _, _ in series for v in (r.get(k) for r in rows) if v is not None]
    ann = 100 * report["ann_accuracy"] if report.get("ann_accuracy") is not None else None
    values += [ann] if ann is not None else []
    lo = math.floor(min(values, default=0) - 0.5) if values else 0
    hi = min(100, math.ceil(max(values, default=100) + 0.5)) if values else 100
    if hi <= lo:
        hi = lo + 1
    L, R, T_, B = 56, 170, 20, 44
    pw, ph = width - L - R, height - T_ - B
    lx = [math.log2(t) for t in ts] or [0]
    x0, x1 = min(lx), max(lx)
    span = (x1 - x0) or 1

    def X(t):
        return L + (math.log2(t) - x0) / span * pw if x1 > x0 else L + pw / 2

    def Y(v):
        return T_ + (hi - v) / (hi - lo) * ph

    out = [f'<svg class="accuracy" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
           'role="img" aria-label="accuracy against time steps">',
           f'<rect x="{L}" y="{T_}" width="{pw}" height="{ph}" fill="#fff" stroke="#ccc"/>']
    step = max(1, math.ceil((hi - lo) / 8))
    for v in range(lo, hi + 1, step):
        out.append(f'<line x1="{L}" x2="{L + pw}" y1="{Y(v):.1f}" y2="{Y(v):.1f}" stroke="#eee"/>'
                   f'<text x="{L - 6}" y="{Y(v) + 4:.1f}" font-size="11" text-anchor="end">{v}</text>')
    for t in ts:
        out.append(f'<text x="{X(t):.1f}" y="{T_ + ph + 16}" font-size="11" text-anchor="middle">{t}</text>')
    out.append(f'<text x="{L + pw / 2}" y="{height - 8}" font-size="12" text-anchor="middle">time steps T</text>'
               f'<text x="14" y="{T_ + ph / 2}" font-size="12" text-anchor="middle" '
               f'transform="rotate(-90 14 {T_ + ph / 2})">accuracy (%)</text>')
    legend = []
    if ann is not None:
        out.append(f'<line x1="{L}" x2="{L + pw}" y1="{Y(ann):.1f}" y2="{Y(ann):.1f}" stroke="#111" '
                   f'stroke-dasharray="6 4"><title>ANN {ann:.2f}%</title></line>')
        legend.append(("ANN", "#111", "6 4"))
    for name, key, colour, dash in series:
        pts = [(t, 100 * r[key]) for t, r in zip(ts, rows) if r.get(key) is not None]
        if not pts:
            continue
        legend.append((name, colour, dash))
        d = " ".join(f"{X(t):.1f},{Y(v):.1f}" for t, v in pts)
        out.append(f'<polyline points="{d}" fill="none" stroke="{colour}" stroke-width="2" '
                   f'stroke-dasharray="{dash}"/>')
        for t, v in pts:
            out.append(f'<circle cx="{X(t):.1f}" cy="{Y(v):.1f}" r="3.5" fill="{colour}">'
                       f"<title>{_e(name)}, T = {t}: {v:.2f}%</title></circle>")
    for i, (name, colour, dash) in enumerate(legend):
        y = T_ + 10 + 18 * i
        out.append(f'<line x1="{L + pw + 12}" x2="{L + pw + 36}" y1="{y}" y2="{y}" stroke="{colour}" '
                   f'stroke-width="2" stroke-dasharray="{dash}"/>'
                   f'<text x="{L + pw + 42}" y="{y + 4}" font-size="11">{_e(name)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def _eval_layers(row: dict, key: str) -> str:
    head = [("layer", "l"), ("neurons", ""), ("correlation", ""), ("rate error", ""), ("clipped %", ""),
            ("rate", ""), ("weight error", ""), ("saturated", "")]
    rows = [[(f"<code>%{_e(L['layer'])}</code>", L["layer"]), (_num(L["neurons"]), L["neurons"]),
             (_num(L.get("correlation"), ".3f"), L.get("correlation")),
             (_num(L.get("relative_error"), ".3f"), L.get("relative_error")),
             (_num(None if L.get("clipped") is None else 100 * L["clipped"], ".2f"), L.get("clipped")),
             (_num(L.get("rate"), ".3f"), L.get("rate")), (_num(L.get("quant_error"), ".4f"), L.get("quant_error")),
             (_num(L.get("saturated")), L.get("saturated"))] for L in row[key]]
    return _table(head, rows)


def render_eval(report: dict) -> str:
    """The page for an ``nmc eval`` report dict (module contract)."""
    rows = report.get("snn") or []
    head = [("T", ""), ("steps", ""), ("ANN@T %", ""), ("float SNN %", ""), ("integer SNN %", ""),
            ("agreement (int) %", ""), ("spikes/sample", ""), ("synops/sample", "")]

    def pct(v):
        return (_num(None if v is None else 100 * v, ".2f"), v)

    table = _table(head, [[(_e(r["timesteps"]), r["timesteps"]), (_e(r["latency_steps"]), r["latency_steps"]),
                           pct(r.get("rate_code_accuracy")), pct(r.get("float_accuracy")), pct(r.get("int_accuracy")),
                           pct(r.get("int_agreement")), (_num(r["spikes_per_sample"], ".1f"), r["spikes_per_sample"]),
                           (_num(r["synaptic_ops_per_sample"], ".1f"), r["synaptic_ops_per_sample"])] for r in rows])
    title = "nmc eval report"
    body = [f"<h1>{_e(title)}</h1>",
            f'<div class="sub">ANN accuracy {100 * report["ann_accuracy"]:.2f}% on {_e(report["samples"])} samples · '
            f'{_e(report.get("encoding"))} input · {_e(report.get("thresholds"))} thresholds · backend '
            f'{_e(report.get("backend"))} · conversion options <code>{_e(report.get("convert_options") or "–")}</code></div>',
            "<h2>Accuracy against time steps</h2>", accuracy_svg(report), table]
    for note in report.get("notes", []):
        body.append(f'<p class="muted">note: {_e(note)}</p>')
    per_layer = [r for r in rows if "layers" in r or "int_layers" in r]
    if per_layer:
        body.append("<h2>Per-layer losses</h2>")
        body.append('<p class="muted">For each layer: how closely the SNN\'s firing rates follow the normalised '
                    "ANN's activations (correlation, relative L2 error), the activations above 1 that a rate "
                    "cannot reach (clipped), the mean rate, and the quantisation error and saturated "
                    "parameters of its weights.</p>")
        for r in per_layer:
            for key, what in (("int_layers", "integer SNN"), ("layers", "float SNN")):
                if key in r:
                    body.append(f"<h3>T = {_e(r['timesteps'])}, {what}</h3>" + _eval_layers(r, key))
    else:
        body.append('<p class="muted">Per-layer losses: run nmc eval with --per-layer.</p>')
    return _page(title, body)
