output "documents_bucket_arn" {
  value = aws_s3_bucket.this["documents"].arn
}

output "documents_bucket" {
  value = aws_s3_bucket.this["documents"].id
}

output "index_bucket_arn" {
  value = aws_s3_bucket.this["index"].arn
}

output "index_bucket" {
  value = aws_s3_bucket.this["index"].id
}
