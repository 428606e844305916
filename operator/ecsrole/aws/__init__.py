"""The AWS side of the shell: the only package that imports boto3 or botocore."""
