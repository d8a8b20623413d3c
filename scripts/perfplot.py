#!/usr/bin/env python3
"""Draws docs/performance.svg: the share of each latency budget in docs/PERFORMANCE.md that the
latest figure uses (measured / target). Standard library only; run from the project's root."""
BARS = [  # (label, measured, target), in the same unit per row
    ("start to first /health (ms)", 41, 150),
    ("search page, p50 (ms)", 2.3, 5),
    ("session ready, p50 (ms)", 56, 100),
    ("exec above bare fork, p50 (ms)", 5.2, 10),
    ("verification overhead, p50 (ms)", 41, 50),
    ("usage history page, p50 (ms)", 0.7, 10),
    ("import 10,000 rows (s)", 8.8, 30),
]
W, ROW, LEFT, BAR = 640, 30, 250, 340
h = ROW * len(BARS) + 40
out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" font-family="sans-serif" font-size="12">',
       f'<text x="{LEFT}" y="16">share of the target used (100% = at the target)</text>']
for i, (label, got, want) in enumerate(BARS):
    y = 30 + i * ROW
    share = got / want
    out.append(f'<text x="{LEFT - 8}" y="{y + 14}" text-anchor="end">{label}</text>')
    out.append(f'<rect x="{LEFT}" y="{y}" width="{BAR}" height="18" fill="#eee"/>')
    out.append(f'<rect x="{LEFT}" y="{y}" width="{BAR * min(share, 1):.0f}" height="18" fill="{"#c33" if share > 1 else "#38a"}"/>')
    out.append(f'<text x="{LEFT + BAR + 6}" y="{y + 14}">{got:g} of {want:g} ({share:.0%})</text>')
out.append('</svg>')
open("docs/performance.svg", "w").write("\n".join(out) + "\n")
