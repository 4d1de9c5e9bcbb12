"""Scripts that run inside CodeBuild actions; each is a file the stack reads and ships."""
