from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from controlplane.apikeys import issue_key
from controlplane.models import Project, Scope


class Command(BaseCommand):
    help = "Create an API key for a project (creating the project if needed); the key is the last line printed."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True, help="project slug")
        parser.add_argument("--scope", action="append", choices=list(Scope.values), help="repeatable; default ingest")
        parser.add_argument("--name", default="", help="a label for the key")

    def handle(self, *args: Any, **options: Any) -> None:
        slug = options["project"]
        project, created = Project.objects.get_or_create(slug=slug, defaults={"name": slug})
        if created:
            self.stdout.write(f"created project {slug}")
        issued = issue_key(project, options["scope"] or [Scope.INGEST], name=options["name"])
        self.stdout.write(f"scopes: {', '.join(issued.api_key.scopes)} (store the key now; it is shown only once)")
        self.stdout.write(issued.secret)
