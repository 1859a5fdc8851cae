# ECR repositories of the three images (docker/). Scanned on push, encrypted with the
# customer key. Tags are mutable on purpose: a release pushes `<version>` and moves the
# environment's tag (`dev`, `prod`) to it; ECS resolves the tag to a digest when it deploys,
# so running tasks never change under a moved tag.
terraform {
  required_providers {
    aws = { source = "hashicorp/aws" }
  }
}

resource "aws_ecr_repository" "this" {
  #checkov:skip=CKV_AWS_51:The environment tag moves on each release (see above); version tags are never pushed twice by the release workflow
  for_each             = toset(var.repositories)
  name                 = "${var.name}/${each.key}"
  image_tag_mutability = "MUTABLE"
  image_scanning_configuration {
    scan_on_push = true
  }
  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = var.kms_key_arn
  }
}

resource "aws_ecr_lifecycle_policy" "this" {
  for_each   = aws_ecr_repository.this
  repository = each.value.name
  policy = jsonencode({
    rules = [{
      rulePriority = 1
      description  = "Keep the last 30 images"
      selection    = { tagStatus = "any", countType = "imageCountMoreThan", countNumber = 30 }
      action       = { type = "expire" }
    }]
  })
}
