print("tutela")
