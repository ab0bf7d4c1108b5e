from django.apps import AppConfig


class TransferConfig(AppConfig):
    name = "bastion.transfer"
    label = "transfer"
    verbose_name = "Import and export"

    def ready(self) -> None:
        from bastion.jobs.runners import register
        from bastion.transfer import export_job, importer

        register("import", importer.run)
        register(export_job.KIND, export_job.run, download_check=export_job.download_problem)
