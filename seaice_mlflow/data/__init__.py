"""Reading, generating and storing AI4Arctic scenes."""
