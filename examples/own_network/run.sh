#!/bin/sh
# The README's "Bring your own network" example, from this folder: train the user's network briefly as a teacher
# (import path lowlight_net:build, on PYTHONPATH), then take it through the recipe. Writes runs/ here.
set -e
cd "$(dirname "$0")"
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}" OMP_NUM_THREADS=1
darkc train --arch lowlight_net:build --steps 30 --batch-size 2 --patch 64 --lr 1e-3 --val none --threads 1 -o runs/teacher
darkc pipeline recipe.toml -o runs/pipeline
