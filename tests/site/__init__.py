"""The site playbooks (playbooks/site.yml, playbooks/roles/) and the Vagrant fleet."""
