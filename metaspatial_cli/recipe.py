"""`metaspatial recipe run|plan RECIPE.yaml`: chain the stages over iterations and turns.

`run` executes the steps (skipping complete ones, so a re-run resumes); `plan` prints the same
steps as a bash script of plain `metaspatial` commands. See recipes/spec.py for the YAML format.
"""

from __future__ import annotations

from pathlib import Path

import typer

from stages.core.errors import UserError

from .options import err_console, print_error

app = typer.Typer(help="Run or print a YAML recipe that chains the stages over iterations and turns.",
                  no_args_is_help=True)

SET_HELP = "Override a recipe entry, e.g. --set rollout.n=8 --set iterations=5 (the value is read as YAML)."


@app.command("run")
def run(recipe: Path = typer.Argument(..., help="Recipe YAML file, e.g. recipes/quickstart.yaml."),
        set_: list[str] = typer.Option([], "--set", help=SET_HELP)) -> None:
    """Run a recipe: every step as a `metaspatial` subprocess; complete steps are skipped."""
    from .recipes.runner import StepFailed, check_runnable, run_recipe
    from .recipes.spec import load_recipe

    try:
        spec = load_recipe(recipe, set_)
        check_runnable(spec)
        run_recipe(spec)
    except UserError as err:
        print_error(err)
        raise typer.Exit(2) from None
    except StepFailed as err:
        print_error(f"the {err.step.name} step failed (exit code {err.code}).\n  command: {err.step.command_line()}\n"
                    "  Fix the cause shown above and run the recipe again: complete steps are skipped.", "recipe stopped")
        raise typer.Exit(err.code) from None
    err_console.print(f"[bold green]recipe complete[/]: {spec.workdir}", highlight=False)


@app.command("plan")
def plan(recipe: Path = typer.Argument(..., help="Recipe YAML file."),
         set_: list[str] = typer.Option([], "--set", help=SET_HELP)) -> None:
    """Print a recipe as a bash script: the config files it needs, then one `metaspatial` command per step."""
    from .recipes.spec import load_recipe
    from .recipes.steps import plan_script

    try:
        script = plan_script(load_recipe(recipe, set_), set_)  # building the steps checks eval.compare_to
    except UserError as err:
        print_error(err)
        raise typer.Exit(2) from None
    typer.echo(script, nl=False)
