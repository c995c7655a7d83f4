# frozen_string_literal: true

# The demo fleet's machines and the Ansible inventory that matches them, from one number:
# AUTOSRE_WEB_VMS web VMs (web1..webN, default 2) and one monitor, on a private network.
# Plain Ruby (no Vagrant), so tests/site/test_vagrant.py runs it under `ruby`:
#   ruby -r ./fleet -e 'puts AutoSREFleet.to_json(AutoSREFleet.web_count)'
require "json"

module AutoSREFleet
  SUBNET = "192.168.56" # VirtualBox's default host-only range; libvirt takes it too
  MONITOR = { "name" => "monitor", "ip" => "#{SUBNET}.10" }.freeze
  MAX_WEB_VMS = 20
  DEFAULT_WEB_VMS = "2"

  # The number of web VMs AUTOSRE_WEB_VMS asks for; ArgumentError for anything but a
  # whole number from 1 to MAX_WEB_VMS.
  def self.web_count(env = ENV)
    raw = env.fetch("AUTOSRE_WEB_VMS", DEFAULT_WEB_VMS).strip
    count = raw.match?(/\A[0-9]{1,3}\z/) ? raw.to_i : 0
    unless count.between?(1, MAX_WEB_VMS)
      raise ArgumentError, "AUTOSRE_WEB_VMS must be a whole number from 1 to #{MAX_WEB_VMS}, got #{raw.inspect}"
    end

    count
  end

  # web1..webN, each with its address on the private network.
  def self.web_vms(count)
    (1..count).map { |n| { "name" => "web#{n}", "ip" => "#{SUBNET}.#{10 + n}" } }
  end

  # The inventory groups playbooks/site.yml plays on.
  def self.groups(count)
    { "web" => web_vms(count).map { |vm| vm["name"] }, "monitor" => [MONITOR["name"]] }
  end

  # Each machine's private address: Vagrant's own inventory reaches the VMs through
  # forwarded ports on 127.0.0.1, the monitor reaches them at these.
  def self.host_vars(count)
    (web_vms(count) + [MONITOR]).to_h { |vm| [vm["name"], { "autosre_address" => vm["ip"] }] }
  end

  def self.to_json(count)
    JSON.generate({ "web_vms" => web_vms(count), "monitor" => MONITOR,
                    "groups" => groups(count), "host_vars" => host_vars(count) })
  end
end
