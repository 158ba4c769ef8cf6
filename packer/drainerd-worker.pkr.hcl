# A worker image with drainerd baked in, unconfigured: the unit starts at
# boot once user-data (or Ansible) writes /etc/drainerd/drainerd.toml.
#
#   packaging/build                                   # the .deb and .rpm
#   packer build -only=amazon-ebs.worker -var base=debian12 packer/   # an AMI
#   packer build -only=qemu.local -var qemu_base_image=PATH packer/   # a local qcow2
#
# The qemu source boots a base image with a bootloader (a Debian cloud
# qcow2), or, with qemu_kernel/qemu_initrd/qemu_append, a bare root file
# system by direct kernel boot (what scripts/e2e-image does).
#
# The provisioning is the same for both: the Ansible role in bake mode
# (package installed, unit enabled, no configuration, not started).

variable "base" {
  type        = string
  default     = "debian12"
  description = "Base system: debian12 or al2023 (Amazon Linux 2023)."
}

variable "region" {
  type    = string
  default = "us-east-1"
}

variable "instance_type" {
  type    = string
  default = "t3.small"
}

variable "ami_filter_debian12" {
  type    = string
  default = "debian-12-amd64-*"
}

variable "ami_filter_al2023" {
  type    = string
  default = "al2023-ami-2023.*-x86_64"
}

variable "qemu_base_image" {
  type        = string
  default     = "output-base/debian-12.qcow2"
  description = "A local Debian 12 disk image (qcow2) with SSH for root by key."
}

variable "qemu_ssh_key" {
  type    = string
  default = "output-base/id_ed25519"
}

variable "qemu_output_directory" {
  type    = string
  default = "output-qemu"
}

variable "qemu_kernel" {
  type        = string
  default     = ""
  description = "Direct kernel boot: a kernel for a base image without a bootloader (empty: boot the disk)."
}

variable "qemu_initrd" {
  type    = string
  default = ""
}

variable "qemu_append" {
  type    = string
  default = "root=/dev/vda rw console=ttyS0"
}

locals {
  stamp      = regex_replace(timestamp(), "[- TZ:]", "")
  al2023     = var.base == "al2023"
  ami_filter = local.al2023 ? var.ami_filter_al2023 : var.ami_filter_debian12
  # Amazon for Amazon Linux, Debian's cloud team account for Debian.
  ami_owner = local.al2023 ? "137112412989" : "136693071363"
  ssh_user  = local.al2023 ? "ec2-user" : "admin"
  qemu_direct_boot = var.qemu_kernel == "" ? [] : [
    ["-kernel", var.qemu_kernel],
    ["-initrd", var.qemu_initrd],
    ["-append", var.qemu_append],
  ]
}

source "amazon-ebs" "worker" {
  region        = var.region
  instance_type = var.instance_type
  ssh_username  = local.ssh_user
  ami_name      = "drainerd-worker-${var.base}-${local.stamp}"
  source_ami_filter {
    filters = {
      name                = local.ami_filter
      architecture        = "x86_64"
      virtualization-type = "hvm"
      root-device-type    = "ebs"
    }
    owners      = [local.ami_owner]
    most_recent = true
  }
  tags = {
    Name     = "drainerd-worker-${var.base}"
    drainerd = "managed"
  }
}

source "qemu" "local" {
  accelerator          = "tcg"
  disk_image           = true
  iso_url              = var.qemu_base_image
  iso_checksum         = "none"
  disk_size            = "4096M"
  format               = "qcow2"
  headless             = true
  memory               = 1024
  ssh_username         = "root"
  ssh_private_key_file = var.qemu_ssh_key
  ssh_timeout          = "10m"
  shutdown_command     = "systemctl poweroff"
  output_directory     = var.qemu_output_directory
  vm_name              = "drainerd-worker.qcow2"
  qemuargs             = local.qemu_direct_boot
}

build {
  sources = ["source.amazon-ebs.worker", "source.qemu.local"]

  provisioner "ansible" {
    playbook_file = "${path.root}/../ansible/bake.yml"
    user          = build.User
    # Ansible connects to the machine itself: Packer 1.6's SSH proxy offers
    # only an ssh-rsa (SHA-1) host key, which OpenSSH 8.8 and later refuse
    # ("no matching host key type found").
    use_proxy = false
    extra_arguments = [
      "--extra-vars", "drainerd_package_deb=${abspath("${path.root}/../target/debian/drainerd.deb")}",
      "--extra-vars", "drainerd_package_rpm=${abspath("${path.root}/../target/generate-rpm/drainerd.rpm")}",
    ]
  }
}
