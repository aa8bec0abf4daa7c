"""PGMR: pseudo-label fusion of several models' masks and per-video model recommendation.

`video` (one model's output as arrays or a frame stream, fusability checks) → `consistency` (agreement /
conflict regions, per-model agreement) → `vote` (trust × confidence weighted vote, conflict rules) and
`baselines` (bbox-average, bbox-max); `features` + `perfdb` (versioned performance database) → `recommend`
(which output to keep per video) and `spans` (or per span); `calibrate` maps each model's confidence to its
observed accuracy before the vote; `pgmr` runs all of it on one video's frame streams. The `fuse` stage:
`inputs` (reading a run), `scoring` (J&F), `onevideo` (one video streamed and written), `merge` (every index's
part → recommend.json, eval/), `stage` (readiness, indexes, merge, and the database builder).
"""
