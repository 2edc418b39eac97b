"""SFTP accounts: one SFTPGo user per account, a drop box under a prefix of its own."""
