"""SFTP account routes: create, list, rotate the password, delete (admins and managers)."""
