"""`metaspatial recipe`: run a YAML recipe that chains the stages (not built yet)."""

import typer

from .options import err_console

app = typer.Typer(help="Run or print a YAML recipe that chains the stages over iterations and turns.",
                  no_args_is_help=True)


@app.command("run")
def run(recipe: str) -> None:
    """Run a recipe (not built yet)."""
    err_console.print("[bold red]error:[/] `metaspatial recipe run` is not built yet in this version.")
    raise typer.Exit(2)


@app.command("plan")
def plan(recipe: str) -> None:
    """Print a recipe as shell commands (not built yet)."""
    err_console.print("[bold red]error:[/] `metaspatial recipe plan` is not built yet in this version.")
    raise typer.Exit(2)
