# Object storage: the documents bucket (RAG_OBJECT_STORE_URI: sources under documents/,
# the pipeline's artifacts, tombstones, erasure requests and the audit trail) and the index
# bucket (RAG_INDEX_URI: LanceDB). Both are encrypted with the customer key, closed to the
# public, TLS only.
#
# The documents bucket is versioned, so an overwritten or deleted source can be recovered,
# and a lifecycle expires noncurrent versions. It has NO object lock, on purpose: erasure
# (docs/erasure.md) must delete every version of an erased document (ObjectStore.purge,
# s3:DeleteObjectVersion, granted to the erasure role alone), which a retention period or
# legal hold would refuse.
#
# The index bucket is not versioned: LanceDB keeps its own table versions, and erasure
# compacts and cleans them up; S3 versions would keep erased rows behind its back.
terraform {
  required_providers {
    aws = { source = "hashicorp/aws" }
  }
}

locals {
  buckets = {
    documents = "${var.name}-documents"
    index     = "${var.name}-index"
  }
}

resource "aws_s3_bucket" "this" {
  #checkov:skip=CKV_AWS_18:Access is audited by CloudTrail S3 data events (organisation trail); server access logs would copy object keys into a second, unerasable store
  #checkov:skip=CKV_AWS_144:Cross-region replication would hold copies that erasure must then chase in a second region; recovery relies on versioning and backups in-region
  #checkov:skip=CKV_AWS_21:The index bucket is deliberately unversioned: LanceDB keeps its own table versions and erasure must be able to remove old ones; the documents bucket is versioned (aws_s3_bucket_versioning.documents)
  #checkov:skip=CKV2_AWS_61:False positive on for_each: both buckets have a lifecycle configuration (aws_s3_bucket_lifecycle_configuration.documents and .index)
  #checkov:skip=CKV_AWS_145:False positive on for_each: both buckets use the customer KMS key (aws_s3_bucket_server_side_encryption_configuration.this)
  for_each      = local.buckets
  bucket        = each.value
  force_destroy = false
}

resource "aws_s3_bucket_public_access_block" "this" {
  for_each                = aws_s3_bucket.this
  bucket                  = each.value.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "this" {
  for_each = aws_s3_bucket.this
  bucket   = each.value.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  for_each = aws_s3_bucket.this
  bucket   = each.value.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_versioning" "documents" {
  bucket = aws_s3_bucket.this["documents"].id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "documents" {
  bucket     = aws_s3_bucket.this["documents"].id
  depends_on = [aws_s3_bucket_versioning.documents]
  rule {
    id     = "expire-noncurrent-versions"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_days
    }
    expiration {
      expired_object_delete_marker = true
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "index" {
  bucket = aws_s3_bucket.this["index"].id
  rule {
    id     = "abort-incomplete-uploads"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
}

# Object-level events go to EventBridge (an alternative to the object-store sensor's scan).
resource "aws_s3_bucket_notification" "this" {
  for_each    = aws_s3_bucket.this
  bucket      = each.value.id
  eventbridge = true
}

data "aws_iam_policy_document" "bucket" {
  for_each = aws_s3_bucket.this
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion", "s3:ListBucket", "s3:ListBucketVersions"]
    resources = [each.value.arn, "${each.value.arn}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "this" {
  for_each   = aws_s3_bucket.this
  bucket     = each.value.id
  policy     = data.aws_iam_policy_document.bucket[each.key].json
  depends_on = [aws_s3_bucket_public_access_block.this]
}
