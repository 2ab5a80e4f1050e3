#!/bin/bash
# Submit a recipe to Slurm: exactly the steps of `metaspatial recipe plan`, one job per step, each
# waiting for the previous one (--dependency=afterok). rollout, render and score run as array jobs
# whose tasks write one part each (the stages take --num-shards/--shard-index from the array);
# update runs as the plan's `accelerate launch` line (the recipe's `accelerate:` section); the judge,
# if served, is started separately (judge-server.sbatch) and passed as JUDGE_URL.
# GPUs come from the recipe, through the plan's `# gpus` line: each rollout task asks for
# rollout.tensor_parallel_size GPUs (vLLM), the update job for accelerate.num_processes. `recipe plan`
# has checked the step arithmetic (whole groups per optimizer step) before anything is submitted.
#
#   examples/slurm/submit.sh recipes/metaspatial-qwen2.5-vl-7b.yaml [--set key=value ...]
#
# Environment: ROLLOUT_SHARDS (GPU array size, default 8), CPU_SHARDS (render/score, default 16),
# GPUS_PER_NODE (default 8: an update needing more uses update_multinode.sbatch by hand),
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
gpus() { sed -n "s/^# gpus .*$1=\([0-9]*\).*/\1/p" "$plan"; }
rollout_gpus=$(gpus rollout)
update_gpus=$(gpus update)
if (( ${update_gpus:-1} > ${GPUS_PER_NODE:-8} )); then
    echo "submit.sh: the update needs ${update_gpus} GPUs (accelerate.num_processes), more than one node's" \
         "${GPUS_PER_NODE:-8}; use examples/slurm/update_multinode.sbatch" >&2
    exit 2
fi
rollout_opts=()
if (( ${rollout_gpus:-1} > 0 )); then rollout_opts=(--gpus-per-task="${rollout_gpus:-1}"); fi

dependency=()
submit() {  # submit SCRIPT ARRAY_SIZE [SBATCH_OPTION...] -- COMMAND... ; sets dependency for the next step
    local script=$1 shards=$2
    shift 2
    local opts=()
    while [[ $1 != -- ]]; do opts+=("$1"); shift; done
    shift
    local array=()
    if (( shards > 1 )); then array=(--array="0-$((shards - 1))"); fi
    local job
    job=$("$sbatch_cmd" --parsable "${extra[@]}" "${array[@]}" "${opts[@]}" "${dependency[@]}" "$here/$script" "$@")
    echo "submitted ${job%%;*}: $*"
    dependency=(--dependency="afterok:${job%%;*}")
}

sed '1,/^# steps$/d' "$plan" | while IFS= read -r line; do
    if [[ "$line" == test\ -e* ]]; then  # make-model: built here, once, before anything is queued
        bash -c "$line"
        continue
    fi
    eval "step=($line)"   # the plan's lines are shell-quoted by `recipe plan`
    stage=${step[1]}
    if [[ ${step[0]} == accelerate ]]; then stage=update; fi   # accelerate launch ... -m metaspatial_cli update
    case "$stage" in
        rollout) submit rollout.sbatch "${ROLLOUT_SHARDS:-8}" "${rollout_opts[@]}" -- "${step[@]}" ;;
        render | score) submit "$stage.sbatch" "${CPU_SHARDS:-16}" -- "${step[@]}" ;;
        update) submit update.sbatch 1 --gpus-per-node="${update_gpus:-1}" -- "${step[@]}" ;;
        eval) submit rollout.sbatch 1 "${rollout_opts[@]}" -- "${step[@]}" ;;
        *) submit render.sbatch 1 -- "${step[@]}" ;;   # gen-prompts: one CPU job
    esac
done
