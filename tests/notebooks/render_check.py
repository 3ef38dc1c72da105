#!/usr/bin/env python3
"""Check executed notebooks the way a reader sees them: converted to HTML (nbconvert) and
laid out by headless Chromium.

For every notebook it checks, in the browser's layout (not in the JSON):
  * every chart (inline SVG or PNG) and every table of the outputs is in the page and has a
    non-zero size on screen, and their numbers equal the outputs' numbers in the notebook;
  * no stderr block and no error block is shown where the notebook has none.
It also saves a screenshot of one notebook (the first given) for a person to look at.

Usage: render_check.py [--screenshot PNG] NOTEBOOK.ipynb ...
Needs: nbconvert (pip), chromium (Debian: apt-get install chromium).
"""
import argparse
import json
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

import nbformat
from nbconvert import HTMLExporter

# Runs in the page after layout: counts what a reader sees and writes it into the DOM,
# where --dump-dom can read it back.
PROBE = """
<script>
window.addEventListener('load', () => {
  const outs = document.querySelectorAll('.jp-OutputArea-output');
  const sized = (el) => { const r = el.getBoundingClientRect(); return r.width > 0 && r.height > 0; };
  const report = {charts: 0, charts_drawn: 0, tables: 0, tables_drawn: 0, cells_empty: 0,
                  stderr: 0};
  outs.forEach((o) => {
    o.querySelectorAll(':scope svg, :scope img').forEach((c) => {
      // Only top-level images of an output (not the glyphs inside an SVG chart).
      if (c.parentElement.closest('svg')) return;
      report.charts += 1; if (sized(c)) report.charts_drawn += 1;
    });
    o.querySelectorAll('table').forEach((t) => {
      report.tables += 1; if (sized(t)) report.tables_drawn += 1;
      t.querySelectorAll('td').forEach((td) => { if (!sized(td)) report.cells_empty += 1; });
    });
    // nbconvert's lab template shows stderr streams and errors alike as this block.
    if (o.matches('[data-mime-type="application/vnd.jupyter.stderr"]')) report.stderr += 1;
  });
  const pre = document.createElement('pre');
  pre.id = 'safs-render-report';
  pre.style.display = 'none';
  pre.textContent = JSON.stringify(report);
  document.body.appendChild(pre);
});
</script>
"""


def browser():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    sys.exit("render_check: no chromium on PATH (Debian: apt-get install chromium)")


def expected(nb):
    """Charts, tables and stderr or error outputs as the notebook's JSON holds them."""
    charts = tables = stderr = 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if "image/svg+xml" in data or "image/png" in data:
                charts += 1
            if "text/html" in data:
                tables += len(re.findall(r"<table", "".join(data["text/html"])))
            if out.get("output_type") == "error" or out.get("name") == "stderr":
                stderr += 1
    return {"charts": charts, "tables": tables, "stderr": stderr}


def render(chrome, html_path, args):
    cmd = [chrome, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           "--virtual-time-budget=10000", *args, html_path.as_uri()]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


def check(chrome, path, workdir, screenshot):
    nb = nbformat.read(path, as_version=4)
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
    html = workdir / (path.stem + ".html")
    html.write_text(body.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    dom = render(chrome, html, ["--dump-dom"])
    m = re.search(r'<pre id="safs-render-report"[^>]*>(.*?)</pre>', dom.stdout, re.S)
    if not m:
        problem = f"the page did not finish (chromium: {dom.stderr.strip()[-500:]})"
        print(f"{path.name}: FAILED\n    {problem}")
        return [problem]
    seen = json.loads(m.group(1).replace("&quot;", '"'))
    want = expected(nb)
    problems = []
    for key in ("charts", "tables"):
        if seen[key] != want[key]:
            problems.append(f"{want[key]} {key} in the outputs, {seen[key]} in the page")
        if seen[f"{key}_drawn"] != seen[key]:
            problems.append(f"{seen[key] - seen[f'{key}_drawn']} {key} laid out with no size")
    if seen["cells_empty"]:
        problems.append(f"{seen['cells_empty']} table cells laid out with no size")
    if seen["stderr"] != want["stderr"]:
        problems.append(f"{seen['stderr']} stderr/error blocks shown, {want['stderr']} in the outputs")
    elif want["stderr"]:
        problems.append(f"{want['stderr']} stderr/error blocks, where a working notebook has none")
    if screenshot:
        shot = render(chrome, html, [f"--screenshot={screenshot}", "--window-size=1280,6000"])
        if shot.returncode != 0 or not pathlib.Path(screenshot).is_file():
            problems.append(f"no screenshot ({shot.stderr.strip()[-300:]})")
    print(f"{path.name}: {seen['charts']} charts, {seen['tables']} tables rendered; "
          + ("ok" if not problems else "FAILED"))
    for p in problems:
        print(f"    {p}")
    return problems


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("notebooks", nargs="+", type=pathlib.Path)
    ap.add_argument("--screenshot", type=pathlib.Path, help="PNG of the first notebook")
    args = ap.parse_args()
    chrome = browser()
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i, path in enumerate(args.notebooks):
            shot = args.screenshot if i == 0 else None
            failed += bool(check(chrome, path, pathlib.Path(tmp), shot))
    print(f"{len(args.notebooks) - failed} rendered cleanly, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
