"""PGMR: pseudo-label fusion of several models' masks and per-video model recommendation.

`video` (one model's output as arrays, fusability checks) → `consistency` (agreement / conflict regions,
per-model agreement) → `vote` (trust × confidence weighted vote, conflict rules) and `baselines`
(bbox-average, bbox-max); `features` + `perfdb` (versioned performance database) → `recommend` (which
output to keep per video) and `spans` (or per span); `calibrate` maps each model's confidence to its observed
accuracy before the vote; `pgmr` runs all of it on one video; `stage` is the `fuse` stage and the
database builder.
"""
