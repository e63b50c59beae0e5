#!/usr/bin/env python3
"""Render an axon report in headless Chromium and check what it shows.

usage: report_check.py CHROMIUM REPORT.html MIN_IMAGES MIN_PATHS [--break-image]

A copy of the report gets a small script that runs after the page has
loaded and records, in the DOM, how many <img> decoded to a non-empty
picture (naturalWidth/Height > 0, laid out) and how many SVG <path> have a
non-zero length and box; Chromium dumps the DOM (--dump-dom) and its
console (--enable-logging=stderr). Exit 0 when every image decoded, every
path drew, the counts reach the minimums and the console is silent; 1
otherwise, with the reason. --break-image corrupts the first image first
(the negative control: the check must then fail).
"""
import json
import os
import re
import subprocess
import sys
import tempfile

CHECK = """<script>
window.addEventListener('load', function () {
  var r = {img: 0, img_ok: 0, svg: 0, path: 0, path_ok: 0};
  document.querySelectorAll('img').forEach(function (i) {
    r.img++;
    if (i.complete && i.naturalWidth > 0 && i.naturalHeight > 0 && i.getBoundingClientRect().width > 0) r.img_ok++;
  });
  r.svg = document.querySelectorAll('svg').length;
  document.querySelectorAll('svg path').forEach(function (p) {
    r.path++;
    var b = p.getBBox();
    if (p.getTotalLength() > 0 && (b.width > 0 || b.height > 0)) r.path_ok++;
  });
  var pre = document.createElement('pre');
  pre.textContent = 'AXCHECK' + JSON.stringify(r) + 'AXEND';
  document.body.appendChild(pre);
});
</script>"""


def main():
    chromium, report, min_img, min_path = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    src = open(report, encoding="utf-8").read()
    if "<script" in src:
        print("the report itself has a script: it must be static")
        return 1
    if re.search(r'(src|href)="(https?:)?//', src):
        print("the report refers to the network")
        return 1
    if "--break-image" in sys.argv:
        src = re.sub(r'base64,([A-Za-z0-9+/]{40})', lambda m: "base64,AAAA" + m.group(1)[::-1], src, count=1)
    with tempfile.TemporaryDirectory() as tmp:
        page = os.path.join(tmp, "page.html")
        with open(page, "w", encoding="utf-8") as f:
            f.write(src.replace("</body>", CHECK + "</body>"))
        p = subprocess.run([chromium, "--headless", "--disable-gpu", "--no-sandbox", "--enable-logging=stderr",
                            "--v=0", "--virtual-time-budget=10000", "--user-data-dir=" + os.path.join(tmp, "profile"),
                            "--dump-dom", "file://" + page], capture_output=True, text=True, timeout=300)
    m = re.search(r"AXCHECK(\{.*?\})AXEND", p.stdout)
    if not m:
        print("no result in the dumped DOM (status %d): %s" % (p.returncode, p.stderr[-2000:]))
        return 1
    r = json.loads(m.group(1))
    console = [l for l in p.stderr.splitlines() if ":CONSOLE" in l]
    print("rendered:", json.dumps(r))
    problems = []
    if console:
        problems.append("console messages: " + " | ".join(console[:3]))
    if r["img_ok"] != r["img"] or r["img"] < min_img:
        problems.append("%d of %d images decoded (want all, at least %d)" % (r["img_ok"], r["img"], min_img))
    if r["path_ok"] != r["path"] or r["path"] < min_path:
        problems.append("%d of %d SVG paths drawn (want all, at least %d)" % (r["path_ok"], r["path"], min_path))
    for q in problems:
        print("FAIL:", q)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
