#!/bin/bash
# Submit a recipe to Slurm: exactly the steps of `metaspatial recipe plan`, one job per step, each
# waiting for the previous one (--dependency=afterok). rollout, render and score run as array jobs
# whose tasks write one part each (the stages take --num-shards/--shard-index from the array);
# update runs under `accelerate launch`; the judge, if served, is started separately
# (judge-server.sbatch) and passed as JUDGE_URL.
#
#   examples/slurm/submit.sh recipes/metaspatial-qwen2.5-vl-7b.yaml [--set key=value ...]
#
# Environment: ROLLOUT_SHARDS (GPU array size, default 8), CPU_SHARDS (render/score, default 16),
# SBATCH_EXTRA (e.g. "--account=abc --partition=gpu"), SBATCH (the submit command, default sbatch).
# Completed steps are skipped by the stages themselves, so re-submitting after a failure resumes.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
recipe=$1
shift
sbatch_cmd=${SBATCH:-sbatch}
read -r -a extra <<< "${SBATCH_EXTRA:-}"
plan=$(mktemp)
trap 'rm -f "$plan"' EXIT
metaspatial recipe plan "$recipe" "$@" > "$plan"
sed '/^# steps$/q' "$plan" | bash   # writes WORKDIR/_recipe/*.yaml, the steps' --config files
mkdir -p logs

dependency=()
submit() {  # submit SCRIPT ARRAY_SIZE COMMAND... ; prints nothing, sets dependency for the next step
    local script=$1 shards=$2
    shift 2
    local array=()
    if (( shards > 1 )); then array=(--array="0-$((shards - 1))"); fi
    local job
    job=$("$sbatch_cmd" --parsable "${extra[@]}" "${array[@]}" "${dependency[@]}" "$here/$script" "$@")
    echo "submitted ${job%%;*}: $*"
    dependency=(--dependency="afterok:${job%%;*}")
}

sed '1,/^# steps$/d' "$plan" | while IFS= read -r line; do
    if [[ "$line" == test\ -e* ]]; then  # make-model: built here, once, before anything is queued
        bash -c "$line"
        continue
    fi
    eval "step=($line)"   # the plan's lines are shell-quoted by `recipe plan`
    case "${step[1]}" in
        rollout) submit rollout.sbatch "${ROLLOUT_SHARDS:-8}" "${step[@]}" ;;
        render | score) submit "${step[1]}.sbatch" "${CPU_SHARDS:-16}" "${step[@]}" ;;
        update) submit update.sbatch 1 "${step[@]}" ;;
        eval) submit rollout.sbatch 1 "${step[@]}" ;;
        *) submit render.sbatch 1 "${step[@]}" ;;   # gen-prompts: one CPU job
    esac
done
