"""The CRM: contacts, companies, custom fields, tags, notes, tasks, pipelines and deals."""
